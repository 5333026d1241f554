"""Which cron expressions a schedule accepts: five fields (minute, hour, day of month, month, day of
week) or an `@` alias, in the dialect Dagster's schedules read (croniter's)."""

import re

ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (lowest, highest, names of lowest, lowest + 1, ...) of each field.
FIELDS: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 59, ()),
    (0, 23, ()),
    (1, 31, ()),
    (1, 12, MONTHS),
    (0, 7, WEEKDAYS),
)
DAY_OF_MONTH, MONTH, DAY_OF_WEEK = 2, 3, 4
_ITEM = re.compile(r"(?P<base>\*|\?|L|\w+(?:-\w+)?|\w+#[1-5])(?:/(?P<step>\d+))?$")


def is_valid_cron(expression: str) -> bool:
    """Whether `expression` is a cron expression a Dagster schedule takes; February 30 and 31 are
    refused, as they never come."""
    if expression.strip().lower() in ALIASES:
        return True
    fields = expression.split()
    if len(fields) != len(FIELDS) or not all(_valid_field(index, field) for index, field in enumerate(fields)):
        return False
    return not (fields[MONTH].lower() in ("2", "feb") and fields[DAY_OF_MONTH] in ("30", "31"))


def _valid_field(index: int, field: str) -> bool:
    return all(_valid_item(index, item) for item in field.split(","))


def _valid_item(index: int, item: str) -> bool:
    match = _ITEM.match(item.lower() if index in (MONTH, DAY_OF_WEEK) else item)
    if match is None or match["step"] is not None and int(match["step"]) == 0:
        return False
    base = match["base"]
    if base == "*":
        return True
    if base in ("?", "L"):
        days = (DAY_OF_MONTH,) if base == "L" else (DAY_OF_MONTH, DAY_OF_WEEK)
        return index in days and match["step"] is None
    if "#" in base:
        return index == DAY_OF_WEEK and match["step"] is None and _value(index, base.split("#")[0]) is not None
    return all(_value(index, bound) is not None for bound in base.split("-"))


def _value(index: int, text: str) -> int | None:
    lowest, highest, names = FIELDS[index]
    if text in names:
        return lowest + names.index(text)
    if text.isdigit() and lowest <= int(text) <= highest:
        return int(text)
    return None
