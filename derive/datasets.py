"""Where samples come from: built-in sets, inline values, CSV files or standard input."""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import InputError
from .problem import BUILTIN_DATASETS, Dataset


def parse_number_list(text: str, what: str) -> tuple[float, ...]:
    """'3.3,1' -> (3.3, 1.0); names the flag and the offending item on error."""
    values = []
    for position, item in enumerate(text.split(","), start=1):
        item = item.strip()
        try:
            value = float(item)
        except ValueError:
            raise InputError(f"{what} item {position} is not a number", item or "empty") from None
        if not math.isfinite(value):
            raise InputError(f"{what} item {position} is not a finite number", item)
        values.append(value)
    return tuple(values)


def read_csv_text(
    text: str, source: str, columns: tuple[str, str] = ("x", "y"), name: str | None = None
) -> Dataset:
    """Samples from CSV text with a header; ',' or ';' separated; '#' lines ignored."""
    text = text.removeprefix("\ufeff")
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise InputError("no header row in the CSV data", source)
    header_line = lines[0][1]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)), delimiter=delimiter)
    header = [cell.strip() for cell in next(reader)]
    positions = []
    for column in columns:
        if column not in header:
            raise InputError(
                f"column {column!r} not found in the CSV header", ", ".join(header) or "empty"
            )
        positions.append(header.index(column))
    xs: list[float] = []
    ys: list[float] = []
    for (line_number, _), row in zip(lines[1:], reader, strict=True):
        for column, position, target in zip(columns, positions, (xs, ys), strict=True):
            cell = row[position].strip() if position < len(row) else ""
            try:
                value = float(cell)
            except ValueError:
                raise InputError(
                    f"non-numeric value in column {column!r}",
                    f"line {line_number}: {cell!r}",
                ) from None
            if not math.isfinite(value):
                raise InputError(
                    f"value in column {column!r} is not a finite number",
                    f"line {line_number}: {cell!r}",
                )
            target.append(value)
    if not xs:
        raise InputError("no samples in the CSV data", source)
    return Dataset(name or Path(source).stem, tuple(xs), tuple(ys), f"CSV: {source}")


def read_csv(path: str, columns: tuple[str, str] = ("x", "y")) -> Dataset:
    if path == "-":
        return read_csv_text(sys.stdin.read(), "standard input", columns, name="stdin")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("data file not found", path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError("cannot read the data file", f"{path}: {error}") from None
    return read_csv_text(text, path, columns)


def resolve_dataset(
    data: str | Path | Dataset,
    x: Sequence[float] | None = None,
    y: Sequence[float] | None = None,
    columns: tuple[str, str] = ("x", "y"),
) -> Dataset:
    """A built-in name, a CSV path ('-' for standard input), a Dataset, or inline x and y."""
    if x is not None or y is not None:
        if x is None or y is None:
            raise InputError("inline data needs both --x and --y", "only one given")
        return Dataset("inline", tuple(map(float, x)), tuple(map(float, y)), "inline values")
    if isinstance(data, Dataset):
        return data
    text = str(data)
    if text in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[text]
    if text == "-" or text.lower().endswith(".csv") or Path(text).exists():
        return read_csv(text, columns)
    raise InputError(
        "unknown data set; use " + ", ".join(BUILTIN_DATASETS) + " or a .csv file", text
    )
