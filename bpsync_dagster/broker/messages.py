"""Dataset-mapping messages: what each one asks for, and the info-error message a bad one gets."""

import hashlib
import json
from dataclasses import dataclass

from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

INFO_ERROR_TITLE = "Message validation failed in sync service"
MAX_REASON_LENGTH = 1000
MAX_VALUE_LENGTH = 200


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
        reason = "; ".join(_describe(problem) for problem in problems)
    except RecursionError:
        return InvalidMessage("the message is nested too deeply")
    if problems:
        return InvalidMessage(reason[:MAX_REASON_LENGTH])
    dataset_id = message["dataset_id"]
    # JSON escapes can spell lone surrogates, which no database (nor Dagster's run tags) can store.
    not_utf8 = [text for text in (dataset_id, *message["accession_ids"]) if not _is_utf8(text)]
    if not_utf8:
        shown = ", ".join(ascii(text)[:MAX_VALUE_LENGTH] for text in not_utf8)
        return InvalidMessage(f"{shown}: not valid UTF-8 (a lone surrogate escape such as \\ud800)"[:MAX_REASON_LENGTH])
    if not dataset_id.startswith(center_prefix):
        return ForeignDataset(dataset_id)
    accession_ids = tuple(message["accession_ids"])
    if not accession_ids:
        return InvalidMessage(f"dataset {dataset_id}: accession_ids is empty; the remote would reject an empty dataset")
    return SyncDataset(dataset_id, accession_ids)


def _describe(problem: ValidationError) -> str:
    """`<path>: <message>`, with a long offending value cut so that the cause stays in the reason."""
    where = "/".join(str(part) for part in problem.absolute_path) or "the message"
    message = problem.message
    shown = repr(problem.instance)
    if len(shown) > MAX_VALUE_LENGTH and shown in message:
        message = message.replace(shown, f"{shown[:MAX_VALUE_LENGTH]}... ({len(shown)} characters)", 1)
    return f"{where}: {message}"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
