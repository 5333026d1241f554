"""Dataset-mapping messages: what each one asks for, and the info-error message a bad one gets."""

import hashlib
import itertools
import json
from dataclasses import dataclass

from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from bpsync_dagster.dataset_ids import character_problem, id_problem, shown

INFO_ERROR_TITLE = "Message validation failed in sync service"
MAX_REASON_LENGTH = 1000
MAX_VALUE_LENGTH = 200
# Schema errors named in a reason: collecting every one of a large message could outlast the tick.
MAX_SCHEMA_PROBLEMS = 5
MAX_ID_PROBLEMS = 3


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
        found = list(itertools.islice(validator.iter_errors(message), MAX_SCHEMA_PROBLEMS + 1))
        problems = sorted(found[:MAX_SCHEMA_PROBLEMS], key=lambda problem: list(problem.absolute_path))
        reason = "; ".join(_describe(problem) for problem in problems)
    except RecursionError:
        return InvalidMessage("the message is nested too deeply")
    if problems:
        more = "; and more" if len(found) > MAX_SCHEMA_PROBLEMS else ""
        return InvalidMessage(_cut(reason, more))
    dataset_id = message["dataset_id"]
    # JSON escapes can spell lone surrogates, which no database (nor Dagster's run tags) can store.
    not_utf8 = [text for text in (dataset_id, *message["accession_ids"]) if not _is_utf8(text)]
    if not_utf8:
        listed = ", ".join(ascii(text)[:MAX_VALUE_LENGTH] for text in not_utf8)
        return InvalidMessage(
            f"{listed}: not valid UTF-8 (a lone surrogate escape such as \\ud800)"[:MAX_REASON_LENGTH]
        )
    if reason := _id_problems(dataset_id, message["accession_ids"]):
        return InvalidMessage(reason)
    if not dataset_id.startswith(center_prefix):
        return ForeignDataset(dataset_id)
    accession_ids = tuple(message["accession_ids"])
    if not accession_ids:
        return InvalidMessage(f"dataset {dataset_id}: accession_ids is empty; the remote would reject an empty dataset")
    return SyncDataset(dataset_id, accession_ids)


def _id_problems(dataset_id: str, accession_ids: list[str]) -> str | None:
    """The IDs no run can carry (`dataset_ids`), the first few named, or None."""
    named = [
        ("dataset_id", dataset_id),
        *((f"accession_ids/{index}", value) for index, value in enumerate(accession_ids)),
    ]
    problems = [f"{name}: {shown(value)} {problem}" for name, value in named if (problem := id_problem(value))]
    if not problems:
        return None
    more = f" ({len(problems)} IDs refused)" if len(problems) > MAX_ID_PROBLEMS else ""
    return _cut("; ".join(problems[:MAX_ID_PROBLEMS]), more)


def correlation_id_problem(correlation_id: str | bytes | None) -> str | None:
    """Why a correlation id cannot be a run's tag (nor be logged as it is), or None."""
    if isinstance(correlation_id, bytes):
        return f"the correlation id {shown(correlation_id)} is not valid UTF-8"
    if correlation_id and (problem := character_problem(correlation_id)):
        return f"the correlation id {shown(correlation_id)} {problem}"
    return None


def _cut(reason: str, ending: str) -> str:
    """`reason` then `ending`, cut so that both fit in MAX_REASON_LENGTH."""
    return reason[: MAX_REASON_LENGTH - len(ending)] + ending


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
