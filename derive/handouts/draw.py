"""What each sheet gets, reproducibly: its seed from the class seed and its number (or
the student's name), its identifier, and the samples and initial values drawn from it."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from ..problem.problem import Dataset, several_features
from .facts import SheetSpec
from .roster import printed_name

# Sensible rounded values: x and y with one decimal, W and b with two.
X_RANGE = (5, 50)  # tenths: 0.5 .. 5.0
Y_RANGE = (5, 40)
PARAMETER_RANGE = (5, 95)  # hundredths: 0.05 .. 0.95


def sheet_seed(class_seed: int, index: int, student: str | None) -> int:
    """A stable seed for one sheet (sha256, never Python's salted hash())."""
    who = f"name:{student}" if student is not None else f"index:{index}"
    digest = hashlib.sha256(f"derive-handout\0{class_seed}\0{who}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def set_variant(samples: int, dataset: Dataset | None) -> str:
    """What decides a sheet's numbers besides its seed: the number of samples drawn, or
    the values of the data every sheet shares (not its name: the same numbers from
    another file are the same sheet)."""
    if dataset is None:
        return f"samples:{samples}"
    columns = (*dataset.columns, dataset.y)
    values = "|".join(",".join(repr(float(v)) for v in column) for column in columns)
    return "data:" + hashlib.sha256(values.encode()).hexdigest()


def sheet_identifier(class_seed: int, number: str, seed: int, variant: str = "") -> str:
    """Short and readable: SEED-NN-XXXX, the sheet number and four hex digits that change
    with everything that decides the numbers (the sheet's seed and the set's variant), so
    that a key is not matched to a sheet with other numbers."""
    digest = hashlib.sha256(f"derive-sheet-id\0{seed}\0{variant}".encode()).digest()
    return f"{class_seed}-{number}-{int.from_bytes(digest[:2], 'big'):04X}"


def number_width(count: int) -> int:
    """Digits of a sheet number: two, or as many as the count has (sheet-007 of 200)."""
    return max(2, len(str(count)))


def specs(
    class_seed: int, count: int, roster: Sequence[str] | None = None, variant: str = ""
) -> list[SheetSpec]:
    """With a roster, a student's numbers follow the name (not the position in the list);
    a name that repeats gets a suffix, so that namesakes get different numbers."""
    names: Sequence[str | None] = list(roster) if roster is not None else [None] * count
    width = number_width(len(names))
    result = []
    seen: dict[str, int] = {}
    for index, student in enumerate(names, start=1):
        key = student
        if student is not None:
            seen[student] = seen.get(student, 0) + 1
            key = student if seen[student] == 1 else f"{student}#{seen[student]}"
        seed = sheet_seed(class_seed, index, key)
        number = f"{index:0{width}d}"
        identifier = sheet_identifier(class_seed, number, seed, variant)
        shown = printed_name(student) if student is not None else None
        result.append(SheetSpec(index, student, seed, identifier, number, shown))
    return result


def _tenths(generator: random.Random, low: int, high: int) -> float:
    return generator.randint(low, high) / 10


def draw_dataset(spec: SheetSpec, samples: int, features: int = 1) -> Dataset:
    """K samples with one decimal and distinct x, from the sheet's seed; a second
    feature is drawn after y, so that one-feature sheets keep their numbers."""
    generator = random.Random(spec.seed)
    x = tuple(v / 10 for v in generator.sample(range(X_RANGE[0], X_RANGE[1] + 1), samples))
    y = tuple(_tenths(generator, *Y_RANGE) for _ in x)
    if features == 1:
        return Dataset(f"sheet {spec.identifier}", x, y, "drawn for the sheet")
    more = [tuple(_tenths(generator, *X_RANGE) for _ in x) for _ in range(features - 1)]
    return several_features(f"sheet {spec.identifier}", [x, *more], y, "drawn for the sheet")


def draw_initial(spec: SheetSpec, parameters: Sequence[str]) -> dict[str, float]:
    """W and b with two decimals (a generator separate from the data's)."""
    generator = random.Random(spec.seed ^ 0x5EED)
    return {name: generator.randint(*PARAMETER_RANGE) / 100 for name in parameters}
