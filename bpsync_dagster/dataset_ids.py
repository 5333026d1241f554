"""What a dataset or accession ID may be, checked before an ID is stored anywhere (run config, tags),
and how an ID or any text read from a message, the SDA database or the remote is shown.

SDA mints short IDs (`EGAD00000000001`, `SYNC-001-12345`, a DOI or URN at most). An ID becomes a
run's config, its `dataset_id` tag, a partition key of `synced_dataset` and a query parameter:
Postgres cannot store a NUL in text, and Dagster indexes run tags (a btree index entry holds at
most about 2700 bytes). So an ID is at most 256 characters (1 KiB in UTF-8), each printable and none
whitespace: letters, marks, digits, punctuation and symbols of any script; no control, format,
private-use, unassigned or surrogate code point, no space.
"""

from bpsync_dagster.errors import SyncError

MAX_ID_LENGTH = 256
SHOWN_LENGTH = 64


def escaped(text: str) -> str:
    """`text` safe to show in a log line, run metadata or a message: every character that is not
    printable (controls such as ESC and newline, format characters such as the bidi override
    U+202E, separators other than the space, private-use, unassigned and surrogate code points) is
    written as Python's repr writes it (`\\x1b`, `\\n`, `\\u202e`). Backslashes are kept as they are,
    so escaping twice changes nothing; the result is for reading, not for parsing back."""
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else repr(character)[1:-1] for character in text)


def shown(value: str | bytes) -> str:
    """`value` escaped (as Python's repr does) and cut to a printable length, saying how long it was."""
    if len(value) <= SHOWN_LENGTH:
        return repr(value)
    unit = "bytes" if isinstance(value, bytes) else "characters"
    return f"{value[:SHOWN_LENGTH]!r}... ({len(value)} {unit})"


def character_problem(value: str) -> str | None:
    """Why `value` holds a character no ID or tag may hold, or None."""
    for character in value:
        if not character.isprintable():
            return f"holds {character!r}, which is not a printable character"
    return None


def id_problem(value: str) -> str | None:
    """Why `value` cannot be a dataset or accession ID, or None when it can."""
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    if problem := character_problem(value):
        return problem
    if any(character.isspace() for character in value):
        return "holds whitespace"
    return None


class InvalidId(SyncError, ValueError):
    """An ID that no run can carry; the message names it, escaped and cut."""


def check_id(name: str, value: str) -> str:
    """`value`, or InvalidId naming `name` and the problem."""
    if problem := id_problem(value):
        raise InvalidId(f"{name}: {shown(value)} {problem}")
    return value
