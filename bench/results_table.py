"""The benchmark's result table: rows of figures with their ratio to a baseline and their target."""


def row(
    group: str,
    case: str,
    what: str,
    value: float,
    unit: str,
    baseline: str | None = None,
    ratio: float | None = None,
    target: str = "",
    met: bool | None = None,
    runs: int = 0,
) -> dict[str, object]:
    """One row of the printed table (and of the JSON results)."""
    return {
        "group": group,
        "case": case,
        "what": what,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "met": met,
        "runs": runs,
    }


def _format_value(value: float) -> str:
    if value != value:  # nan
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_table(rows: list[dict[str, object]]) -> str:
    header = ("group", "case", "measure", "median", "unit", "ratio", "baseline", "target", "runs")
    lines = []
    for row in rows:
        ratio = "" if row["ratio"] is None else f"{_format_value(row['ratio'])}×"
        target = row["target"]
        if row["met"] is not None:
            target = f"{target} {'MET' if row['met'] else 'MISSED'}"
        elif target and row["target"]:
            target = f"{target} (not measurable)"
        lines.append(
            (
                row["group"],
                row["case"],
                row["what"],
                _format_value(row["value"]),
                row["unit"],
                ratio,
                row["baseline"] or "",
                target,
                str(row["runs"]),
            )
        )
    widths = [max(len(str(item[i])) for item in [header, *lines]) for i in range(len(header))]
    text = [
        " | ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True)),
        "-+-".join("-" * width for width in widths),
    ]
    previous = None
    for line in lines:
        if previous is not None and line[0] != previous:
            text.append("-+-".join("-" * width for width in widths))
        previous = line[0]
        text.append(" | ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))
    return "\n".join(text)
