"""The facts of a set of handouts: each sheet's spec (seed, number, student), its
samples and initial values, the key's values and their checks. No HTML:
templates/handouts/ shows them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from ..exact.check import Check
from ..problem.problem import Problem

LEARNING_RATE = Fraction(1, 100)  # eta of the SGD step on the sheet, as in the original script
MAX_SAMPLES = 4  # what fits on one A4 page with boxes to write in
MAX_FEATURES = 2  # a sheet with more features than two no longer fits one page
# With two features each sample has one more share to work out: two samples fit a page
MAX_SAMPLES_BY_FEATURES = {1: MAX_SAMPLES, 2: 2}
MAX_COUNT = 1000
KEY_DIGITS = 6  # significant digits of the values printed in the key


@dataclass(frozen=True)
class Sheet:
    """One student's exercise and its key."""

    spec: SheetSpec
    problem: Problem
    init_given: Mapping[str, float]  # as printed (two decimals)
    values: KeyValues  # at the float32 numbers the tape uses
    hand: KeyValues  # at the printed decimals: what the boxes show
    share_latex: Mapping[str, str]  # 2 r_i x_i, 2 r_i
    residual_lines: tuple[tuple[str, str], ...]  # per sample: r_k = formula, = numbers
    checks: tuple[KeyCheck, ...] = ()  # filled in by check_key

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


@dataclass(frozen=True)
class Handouts:
    """A class set: the shared formulas and one Sheet per student."""

    class_seed: int
    lang: str
    samples: int
    model: str  # LaTeX of y_hat_i
    loss: str  # LaTeX of L for general n
    term: str  # LaTeX of one sample's term of the loss, in r_i (r_i^2, |r_i|)
    model_name: str  # the model's registered name (catalogue key model.<name>)
    model_title: str  # the entry's own title, for a language without that key
    gradients: Mapping[str, str]  # LaTeX of each general-n derivative
    learning_rate: Fraction
    sheets: tuple[Sheet, ...]
    # The suffix of the loss's catalogue keys for the sheets' words ("" for the mean
    # squared error, "_mae" for the mean absolute error): from its entry
    keys: str

    @property
    def ok(self) -> bool:
        return all(sheet.ok for sheet in self.sheets)


def as_decimal(value: float) -> Fraction:
    """A given value as the decimal it was written as (4.3, not float32's 4.30000019)."""
    return Fraction(repr(float(value)))


@dataclass(frozen=True)
class SampleWork:
    """One sample's row of the sheet: what the student computes, exactly."""

    i: int
    x: tuple[float, ...]  # each feature as given (one decimal)
    y: float
    residual: Fraction
    square: Fraction
    shares: Mapping[str, Fraction]  # each parameter's per-sample term (2 r x, 2 r)


@dataclass(frozen=True)
class KeyValues:
    """Every value of the key, exact at the float32 values the tape uses."""

    samples: tuple[SampleWork, ...]
    loss: Fraction
    gradients: Mapping[str, Fraction]
    updated: Mapping[str, Fraction]  # one SGD step: p - eta * dL/dp


@dataclass(frozen=True)
class KeyCheck:
    """One value of the key: as printed, at the float32 numbers, and on the tape."""

    check: Check  # the value at the float32 numbers against the tape
    printed: Fraction  # the value in the box, worked out from the printed decimals
    printed_ok: bool  # it is within the tolerance of the value at the float32 numbers
    consistent: bool  # the means of the printed per-sample values are the printed mean

    @property
    def ok(self) -> bool:
        return self.check.ok and self.printed_ok and self.consistent


@dataclass(frozen=True)
class SheetSpec:
    """Who a sheet is for and the seed its numbers come from."""

    index: int  # 1-based position in the class
    student: str | None  # from --roster; decides the numbers
    seed: int
    identifier: str  # printed on sheet and key, so that they pair up
    number: str  # the index zero-padded to the width of the count, so that files sort
    printed_name: str | None = None  # the name as the sheet prints it (see printed_name)
