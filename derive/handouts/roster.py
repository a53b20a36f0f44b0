"""The class roster (a UTF-8 CSV with a name column): names read and checked, repeated
names found, and each name as printed (shortened, characters no font has as U+ codes)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..common.errors import InputError
from .facts import MAX_COUNT, Handouts

MAX_NAME_LENGTH = 48  # characters of a name on the sheet: one line, two at most


def printed_name(name: str, unprintable: frozenset[str] = frozenset()) -> str:
    """The name as the sheet prints it: a character no font has a glyph for as its code
    (U+1F389), and a name longer than MAX_NAME_LENGTH shortened with an ellipsis, so that
    the sheet still fits one page. The numbers follow the full name regardless."""
    pieces = [f"U+{ord(c):04X}" if c in unprintable else c for c in name]
    if sum(map(len, pieces)) <= MAX_NAME_LENGTH:
        return "".join(pieces)
    shown, length = [], 0
    for piece in pieces:
        if length + len(piece) > MAX_NAME_LENGTH - 1:
            break
        shown.append(piece)
        length += len(piece)
    return "".join(shown).rstrip() + "\u2026"


def without_unprintable(handouts: Handouts, unprintable: frozenset[str]) -> Handouts:
    """The class set with every printed name rewritten for the glyphs the fonts lack."""
    if not unprintable:
        return handouts
    sheets = tuple(
        replace(
            sheet,
            spec=replace(sheet.spec, printed_name=printed_name(sheet.spec.student, unprintable)),
        )
        if sheet.spec.student is not None
        else sheet
        for sheet in handouts.sheets
    )
    return replace(handouts, sheets=sheets)


@dataclass(frozen=True)
class RosterEntry:
    """One student of the roster and the row of the CSV file it is on (the header is 1)."""

    row: int
    name: str


def read_roster(path: str | Path) -> list[str]:
    """Student names from a CSV file with a `name` column (UTF-8, with or without BOM)."""
    return [entry.name for entry in read_roster_entries(path)]


def read_roster_entries(path: str | Path) -> list[RosterEntry]:
    """The roster's names with their rows (for messages about a row)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("roster file not found", path) from None
    except UnicodeDecodeError:
        raise InputError("roster file is not UTF-8", path) from None
    except OSError as error:
        raise InputError("cannot read the roster file", f"{path}: {error.strerror}") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [column.strip() for column in reader.fieldnames or []]
    if "name" not in columns:
        raise InputError("roster has no 'name' column", ", ".join(columns) or "empty file")
    reader.fieldnames = columns
    entries = [RosterEntry(reader.line_num, (row.get("name") or "").strip()) for row in reader]
    entries = [entry for entry in entries if entry.name]
    if not entries:
        raise InputError("roster has no names", path)
    if len(entries) > MAX_COUNT:
        raise InputError(f"roster has more than {MAX_COUNT} names", len(entries))
    return entries


def repeated_names(entries: Sequence[RosterEntry]) -> dict[str, tuple[int, ...]]:
    """Each name that is on more than one row, with its rows."""
    rows: dict[str, list[int]] = {}
    for entry in entries:
        rows.setdefault(entry.name, []).append(entry.row)
    return {name: tuple(found) for name, found in rows.items() if len(found) > 1}
