"""Dataset-mapping messages: what each one asks for, and the info-error message a bad one gets."""

import hashlib
import json
from dataclasses import dataclass

from jsonschema.protocols import Validator

INFO_ERROR_TITLE = "Message validation failed in sync service"
MAX_REASON_LENGTH = 1000


@dataclass(frozen=True)
class SyncDataset:
    """A local dataset to sync."""

    dataset_id: str
    accession_ids: tuple[str, ...]


@dataclass(frozen=True)
class ForeignDataset:
    """A dataset minted at another node: nothing to do."""

    dataset_id: str


@dataclass(frozen=True)
class InvalidMessage:
    """A message that cannot be acted on; it is answered with an info-error message."""

    reason: str


Decision = SyncDataset | ForeignDataset | InvalidMessage


def decide(body: bytes, validator: Validator, center_prefix: str) -> Decision:
    """What a dataset-mapping message body asks for; never raises."""
    try:
        message = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return InvalidMessage("the message is not valid UTF-8")
    except (ValueError, RecursionError) as error:
        return InvalidMessage(f"the message is not JSON: {error}"[:MAX_REASON_LENGTH])
    try:
        problems = sorted(validator.iter_errors(message), key=lambda problem: list(problem.absolute_path))
    except RecursionError:
        return InvalidMessage("the message is nested too deeply")
    if problems:
        described = ["/".join(str(part) for part in problem.absolute_path) or "the message" for problem in problems]
        reason = "; ".join(f"{where}: {problem.message}" for where, problem in zip(described, problems, strict=True))
        return InvalidMessage(reason[:MAX_REASON_LENGTH])
    dataset_id = message["dataset_id"]
    if not dataset_id.startswith(center_prefix):
        return ForeignDataset(dataset_id)
    accession_ids = tuple(message["accession_ids"])
    if not accession_ids:
        return InvalidMessage(f"dataset {dataset_id}: accession_ids is empty; the remote would reject an empty dataset")
    return SyncDataset(dataset_id, accession_ids)


def info_error_body(reason: str, original: bytes, error: str = INFO_ERROR_TITLE) -> bytes:
    """The info-error message SDA services publish for a message they cannot handle."""
    return json.dumps(
        {
            "error": error,
            "reason": reason or "unknown",
            "original-message": original.decode("utf-8", errors="replace"),
        }
    ).encode()


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
