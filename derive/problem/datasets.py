"""Where samples come from: built-in sets, inline values, CSV files or standard input."""

from __future__ import annotations

import csv
import io
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..common.errors import InputError
from ..common.i18n import Message
from .problem import BUILTIN_DATASETS, Dataset, several_features


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


Columns = tuple[str, ...]  # CSV column names: the features', then y's


def parse_columns(text: str) -> Columns:
    """'x,y' -> ('x', 'y'); 'x1,x2,y' -> three names: the CSV columns holding the
    features and, last, y (--columns)."""
    columns = tuple(part.strip() for part in text.split(","))
    if len(columns) < 2 or not all(columns):
        raise InputError("--columns expects feature names, then y's, such as x,y or x1,x2,y", text)
    repeated = next((c for c in columns if columns.count(c) > 1), None)
    if repeated is not None:
        raise InputError("--columns names a column twice", repeated)
    return columns


def read_csv_text(
    text: str, source: str, columns: Columns = ("x", "y"), name: str | None = None
) -> Dataset:
    """Samples from CSV text with a header; ',', ';' or tab separated; '#' lines ignored."""
    text = text.removeprefix("\ufeff")
    parsed = _parse_quickly(text, columns) if "#" not in text else None
    if parsed is None:
        parsed = _parse_carefully(text, source, columns)
    *features, ys = parsed
    if not ys.size:
        raise InputError("no samples in the CSV data", source)
    named = ", ".join(columns[:-1])
    return several_features(
        name or Path(source).stem,
        [f.tolist() for f in features],
        ys.tolist(),
        f"CSV: {source}, columns {named} and {columns[-1]}",
        Message.of("dataset.csv", file=source, x=named, y=columns[-1]),
        columns[:-1],
    )


DELIMITERS = (",", ";", "\t")


def _header(line: str, columns: Columns) -> tuple[str, list[int], int]:
    """The delimiter, the positions of the chosen columns, and the number of columns."""
    # The separator the header uses most; a tie (a one-column header) means ','.
    delimiter = max(DELIMITERS, key=line.count)
    header = [cell.strip() for cell in next(csv.reader(io.StringIO(line), delimiter=delimiter))]
    positions = []
    for column in columns:
        if column not in header:
            raise InputError(
                f"column {column!r} not found in the CSV header", ", ".join(header) or "empty"
            )
        if header.count(column) > 1:
            raise InputError(
                f"column {column!r} appears {header.count(column)} times in the CSV header",
                ", ".join(header),
            )
        positions.append(header.index(column))
    return delimiter, positions, len(header)


def _parse_quickly(text: str, columns: Columns) -> tuple[np.ndarray, ...] | None:
    """A file with no comments: the header, then the rest of the text in one go; line
    numbers are only wanted for an error. None when the file is not plain; the careful
    path then reads it again and names what is wrong."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        line, start = text[start:end], end
        if "\r" in line.rstrip("\r\n"):
            return None  # lines ended by a bare carriage return: the careful path splits them
        if line.strip():
            delimiter, positions, width = _header(line, columns)
            return _parse_plain(text[start:], delimiter, width, positions)
    return None


def _parse_carefully(text: str, source: str, columns: Columns) -> tuple[np.ndarray, ...]:
    """Line by line, keeping line numbers for the message about a bad cell."""
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise InputError("no header row in the CSV data", source)
    delimiter, positions, width = _header(lines[0][1], columns)
    body = [line for _, line in lines[1:]]
    parsed = _parse_plain("\n".join(body), delimiter, width, positions)
    if parsed is None:
        # Quoted cells, ragged rows, or a cell that is not a finite number: read row by
        # row, which handles quoting and names the line and the column of a bad cell.
        rows = list(csv.reader(io.StringIO("\n".join(body)), delimiter=delimiter))
        line_numbers = [number for number, _ in lines[1:]]
        parsed = _read_cells(rows, line_numbers, columns, positions, (width, delimiter))
    return parsed


def _parse_plain(
    body: str, delimiter: str, width: int, positions: list[int]
) -> tuple[np.ndarray, ...] | None:
    """The fast path for plain rows (no quotes, every row as wide as the header, only
    finite numbers): NumPy's CSV reader, which skips empty lines. None when it does not
    apply, or for no rows at all; the careful path then has the last word."""
    if '"' in body or not body.strip():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # anything NumPy only warns about is not plain
            table = np.loadtxt(
                io.StringIO(body),
                delimiter=delimiter,
                comments=None,
                quotechar=None,
                ndmin=2,
                dtype=np.float64,
            )
    except (ValueError, Warning):
        return None
    if table.shape[1] != width:
        return None
    chosen = tuple(np.ascontiguousarray(table[:, p]) for p in positions)
    if not all(np.isfinite(c).all() for c in chosen):
        return None
    return chosen


def _check_width(row: list[str], line_number: int, width: int, delimiter: str) -> None:
    """A row with more fields than the header has no column for some of its values."""
    if len(row) > width:
        raise InputError(
            f"line {line_number} has more fields than the CSV header",
            f"{len(row)} fields, the header has {width}",
            _SPLIT_DECIMALS_HINT if delimiter == "," and _split_decimals(row, width) else None,
        )


_SPLIT_DECIMALS_HINT = "numbers with decimal commas? write them with decimal points (1.5, not 1,5)"


def _split_decimals(row: list[str], width: int) -> bool:
    """1,5,2,5 under the header x,y: a decimal comma splits every number in two."""
    return len(row) == 2 * width and all(part.strip().isdigit() for part in row[1::2])


def _read_cells(
    rows: list[list[str]],
    line_numbers: list[int],
    columns: Columns,
    positions: list[int],
    layout: tuple[int, str],
) -> tuple[np.ndarray, ...]:
    """Cell by cell; raises an InputError naming the first row wider than the header
    (``layout``: its width and delimiter) or cell that is not a finite number."""
    values: tuple[list[float], ...] = tuple([] for _ in columns)
    for line_number, row in zip(line_numbers, rows, strict=True):
        _check_width(row, line_number, *layout)
        for column, position, target in zip(columns, positions, values, strict=True):
            cell = row[position].strip() if position < len(row) else ""
            target.append(_cell_value(cell, column, line_number))
    return tuple(np.array(v) for v in values)


def _cell_value(cell: str, column: str, line_number: int) -> float:
    """A finite number, or an InputError naming the column and the line."""
    where = f"in column {column!r} on line {line_number}"
    if not cell:
        raise InputError(f"missing value {where}", "empty cell")
    try:
        value = float(cell)
    except ValueError:
        hint = f"write {_with_point(cell)} with a decimal point" if _with_point(cell) else None
        raise InputError(f"non-numeric value {where}", repr(cell), hint) from None
    if not math.isfinite(value):
        raise InputError(f"value {where} is not a finite number", repr(cell))
    return value


def _with_point(cell: str) -> str | None:
    """'1,5' -> '1.5': a number written with a decimal comma; None for anything else."""
    if "," not in cell:
        return None
    candidate = cell.replace(",", ".", 1)
    try:
        float(candidate)
    except ValueError:
        return None
    return candidate


def read_csv(path: str, columns: Columns = ("x", "y")) -> Dataset:
    if path == "-":
        return read_csv_text(sys.stdin.read(), "standard input", columns, name="stdin")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("data file not found", path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError("cannot read the data file", f"{path}: {error}") from None
    return read_csv_text(text, path, columns)


DEFAULT_DATASET = "seed"


def resolve_dataset(
    data: str | Path | Dataset | None = None,
    x: Sequence[float] | Sequence[Sequence[float]] | None = None,
    y: Sequence[float] | None = None,
    columns: Columns = ("x", "y"),
) -> Dataset:
    """A built-in name, a CSV path ('-' for standard input), a Dataset, or inline x and y
    (`x`: one feature's values, or one sequence per feature); None is the built-in
    'seed'. Data given both ways is refused: which one was meant?"""
    if x is not None or y is not None:
        if data is not None:
            raise InputError("--data cannot be combined with --x and --y", _data_name(data))
        if x is None or y is None:
            raise InputError("inline data needs both --x and --y", "only one given")
        features = x if len(x) and isinstance(x[0], Sequence) else [x]
        return several_features("inline", features, y, "inline values")  # type: ignore[arg-type]
    if data is None:
        data = DEFAULT_DATASET
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


def _data_name(data: str | Path | Dataset) -> str:
    return data.name if isinstance(data, Dataset) else str(data)
