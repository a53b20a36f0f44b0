"""Handouts for a class: one exercise sheet per student, and its answer key.

Each sheet has its own samples and initial values, drawn reproducibly from the class
seed and the sheet's index (or the student's name). The key holds every value the
student works out -- each sample's residual, its square and its shares, the means, one
SGD step -- twice, in exact arithmetic: at the printed decimals (what the boxes show)
and at their float32 roundings (what the tape uses, checked against ``tape.gradient``).
Nothing here is about HTML; templates/handouts/ shows the facts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy as sp

from ..common.errors import InputError
from ..exact import reference, underflow
from ..exact.check import Bound, Check, compare, gamma_bound, rounding_bound
from ..exact.reference import Samples
from ..exact.roundings import tape_roundings
from ..models.registry import get_loss, get_model
from ..problem.problem import Dataset, Problem, draw_seed, make_problem
from ..report.substitution import _NumberPrinter
from ..symbolic.derivation import Formula, I, N, Symbolic, X, Y, build_symbolic, latex
from ..tape.gradient import TapeResult

LEARNING_RATE = Fraction(1, 100)  # eta of the SGD step on the sheet, as in the original script
MAX_SAMPLES = 4  # what fits on one A4 page with boxes to write in
MAX_COUNT = 1000
KEY_DIGITS = 6  # significant digits of the values printed in the key

# Sensible rounded values: x and y with one decimal, W and b with two.
X_RANGE = (5, 50)  # tenths: 0.5 .. 5.0
Y_RANGE = (5, 40)
PARAMETER_RANGE = (5, 95)  # hundredths: 0.05 .. 0.95


@dataclass(frozen=True)
class SheetSpec:
    """Who a sheet is for and the seed its numbers come from."""

    index: int  # 1-based position in the class
    student: str | None  # from --roster; decides the numbers
    seed: int
    identifier: str  # printed on sheet and key, so that they pair up
    number: str  # the index zero-padded to the width of the count, so that files sort
    printed_name: str | None = None  # the name as the sheet prints it (see printed_name)


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
    values = "|".join(",".join(repr(float(v)) for v in column) for column in (dataset.x, dataset.y))
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


def _tenths(generator: random.Random, low: int, high: int) -> float:
    return generator.randint(low, high) / 10


def draw_dataset(spec: SheetSpec, samples: int) -> Dataset:
    """K samples with one decimal and distinct x, from the sheet's seed."""
    generator = random.Random(spec.seed)
    x = tuple(v / 10 for v in generator.sample(range(X_RANGE[0], X_RANGE[1] + 1), samples))
    y = tuple(_tenths(generator, *Y_RANGE) for _ in x)
    return Dataset(f"sheet {spec.identifier}", x, y, "drawn for the sheet")


def draw_initial(spec: SheetSpec, parameters: Sequence[str]) -> dict[str, float]:
    """W and b with two decimals (a generator separate from the data's)."""
    generator = random.Random(spec.seed ^ 0x5EED)
    return {name: generator.randint(*PARAMETER_RANGE) / 100 for name in parameters}


@dataclass(frozen=True)
class SampleWork:
    """One sample's row of the sheet: what the student computes, exactly."""

    i: int
    x: float  # as given (one decimal)
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
    gradients: Mapping[str, str]  # LaTeX of each general-n derivative
    learning_rate: Fraction
    sheets: tuple[Sheet, ...]

    @property
    def ok(self) -> bool:
        return all(sheet.ok for sheet in self.sheets)


def key_values(
    symbolic: Symbolic,
    parameters: Mapping[str, Fraction],
    xs: Sequence[Fraction],
    ys: Sequence[Fraction],
    given: Dataset,
) -> KeyValues:
    """Every value of the key, in exact arithmetic, at the numbers given (a sheet has a
    handful of samples, so every sum is exact)."""
    n = len(xs)

    def per_sample(expr: sp.Expr) -> list[Fraction]:
        function = symbolic.sample_function(expr)
        return [Fraction(function(*parameters.values(), x, y)) for x, y in zip(xs, ys, strict=True)]

    residuals = per_sample(symbolic.residual)
    squares = per_sample(symbolic.loss.summand)
    shares: dict[str, list[Fraction]] = {}
    gradients: dict[str, Fraction] = {}
    for name, derivation in symbolic.derivations.items():
        formula = derivation.result
        coefficient = Fraction(str(formula.coefficient.subs(N, n)))
        summands = per_sample(formula.summand)
        shares[name] = [coefficient * n * value for value in summands]
        gradients[name] = coefficient * sum(summands, Fraction(0))
    loss_coefficient = Fraction(str(symbolic.loss.coefficient.subs(N, n)))
    rows = tuple(
        SampleWork(
            i=k + 1,
            x=given.x[k],
            y=given.y[k],
            residual=residuals[k],
            square=squares[k],
            shares={name: values[k] for name, values in shares.items()},
        )
        for k in range(n)
    )
    return KeyValues(
        samples=rows,
        loss=loss_coefficient * sum(squares, Fraction(0)),
        gradients=gradients,
        updated={name: parameters[name] - LEARNING_RATE * gradients[name] for name in parameters},
    )


def tape_key(symbolic: Symbolic, problem: Problem) -> KeyValues:
    """The key at the float32 numbers the tape uses."""
    return key_values(
        symbolic,
        {name: Fraction(v) for name, v in problem.initial.values.items()},
        [Fraction(v) for v in problem.x],
        [Fraction(v) for v in problem.y],
        problem.dataset,
    )


def hand_key(symbolic: Symbolic, problem: Problem, init: Mapping[str, float]) -> KeyValues:
    """The key at the decimals printed on the sheet: what the student gets by hand."""
    return key_values(
        symbolic,
        {name: _decimal(v) for name, v in init.items()},
        [_decimal(v) for v in problem.dataset.x],
        [_decimal(v) for v in problem.dataset.y],
        problem.dataset,
    )


def _sgd_on_tape(value: float, gradient: float, dtype: str) -> float:
    """What SGD does with the tape's gradient: var - lr * grad, in the variable's dtype."""
    kind = np.dtype(dtype).type
    rate = kind(float(LEARNING_RATE))
    return float(kind(value) - rate * kind(gradient))


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


def _means_agree(values: KeyValues, name: str | None) -> bool:
    n = len(values.samples)
    if name is None:
        return sum((s.square for s in values.samples), Fraction(0)) / n == values.loss
    return sum((s.shares[name] for s in values.samples), Fraction(0)) / n == values.gradients[name]


def check_key(symbolic: Symbolic, sheet: Sheet, tape: TapeResult) -> tuple[KeyCheck, ...]:
    """Each key value against the tape, with the report's rounding-error bounds.

    At the float32 numbers, the loss and the gradients are compared with
    ``tape.gradient``, and the SGD step with var - lr * grad computed in float32 from the
    tape's gradient, as SGD does. The printed values (worked from the decimals) must lie
    within the same tolerance of the float32 ones: storing a decimal as float32 moves it
    by at most u relative, and each value is a polynomial of degree at most 3 in the
    inputs, so it moves by at most about 3uM, less than the bound. The per-sample values
    are checked through their means, which must be the printed means exactly.
    """
    problem, values, hand = sheet.problem, sheet.values, sheet.hand
    samples = Samples.of(problem.x, problem.y)
    parameters = {name: Fraction(v) for name, v in problem.initial.values.items()}
    dtype, n = problem.dtype, problem.n

    def bound_for(formula: Formula, key: str) -> Bound:
        magnitude = reference.magnitude(symbolic, formula, parameters, samples)
        flushes = underflow.at_initial_values(
            problem, symbolic, underflow.sensitivities(symbolic).of_quantity(key)
        )
        # k as in the report: the sum's depth (n - 1 for so few samples, in any
        # order) plus the roundings of one term, counted op by op.
        k = tape_roundings(n, dtype, tape.order, problem.model, problem.loss)[key]
        return rounding_bound(n, dtype, magnitude, flushes, samples.exact, roundings=k)

    def entry(
        check: Check, exact: Fraction, printed: Fraction, name: str | None, mean: bool
    ) -> KeyCheck:
        return KeyCheck(
            check=check,
            printed=printed,
            printed_ok=abs(printed - exact) <= Fraction(check.tolerance),
            consistent=not mean or (_means_agree(values, name) and _means_agree(hand, name)),
        )

    loss = compare("L", values.loss, tape.loss, bound_for(symbolic.loss, "L"), dtype)
    entries = [entry(loss, values.loss, hand.loss, None, True)]
    gradient_checks = {}
    for name, derivation in symbolic.derivations.items():
        check = compare(
            f"dL/d{name}",
            values.gradients[name],
            tape.gradients[name],
            bound_for(derivation.result, name),
            dtype,
        )
        gradient_checks[name] = check
        entries.append(entry(check, values.gradients[name], hand.gradients[name], name, True))
    rate32 = Fraction(float(np.dtype(dtype).type(float(LEARNING_RATE))))
    for name, check in gradient_checks.items():
        tape_update = _sgd_on_tape(problem.initial.values[name], tape.gradients[name], dtype)
        g_tape = Fraction(tape.gradients[name])
        # The tape's gradient error, scaled by eta; eta itself rounded to the dtype; then
        # two roundings (the product and the difference).
        propagated = LEARNING_RATE * Fraction(check.tolerance) + abs(rate32 - LEARNING_RATE) * abs(
            g_tape
        )
        magnitude = abs(parameters[name]) + rate32 * abs(g_tape)
        bound = gamma_bound(2, dtype, magnitude, underflow.update_sensitivity(rate32))
        bound = replace(bound, value=float(Fraction(bound.value) + propagated))
        update = compare(f"{name}1", values.updated[name], tape_update, bound, dtype)
        entries.append(entry(update, values.updated[name], hand.updated[name], name, False))
    return tuple(entries)


def build_sheet(
    symbolic: Symbolic, spec: SheetSpec, dataset: Dataset | None, samples: int
) -> Sheet:
    data = dataset if dataset is not None else draw_dataset(spec, samples)
    model = get_model("linear")
    init = draw_initial(spec, model.parameters)
    problem = make_problem(data, init=init, name=spec.identifier)
    r_i = sp.Symbol("r_{i}")
    shares = {
        name: latex(
            derivation.result.coefficient
            * N
            * derivation.result.summand.xreplace({symbolic.residual: r_i})
        )
        for name, derivation in symbolic.derivations.items()
    }
    return Sheet(
        spec=spec,
        problem=problem,
        init_given=init,
        values=tape_key(symbolic, problem),
        hand=hand_key(symbolic, problem, init),
        share_latex=shares,
        residual_lines=tuple(
            _residual_lines(symbolic, k, init, data) for k in range(1, len(data.x) + 1)
        ),
    )


def _decimal(value: float) -> Fraction:
    """A given value as the decimal it was written as (4.3, not float32's 4.30000019)."""
    return Fraction(repr(float(value)))


def _residual_lines(
    symbolic: Symbolic, k: int, init: Mapping[str, float], data: Dataset
) -> tuple[str, str]:
    """r_k = (the residual's formula) and = (the same with the sheet's numbers)."""
    residual = symbolic.residual.subs(I, k)
    numbers: dict[sp.Basic, Fraction] = {
        symbolic.parameters[name]: _decimal(value) for name, value in init.items()
    }
    numbers[X[k]], numbers[Y[k]] = _decimal(data.x[k - 1]), _decimal(data.y[k - 1])
    return (
        f"r_{{{k}}} = " + latex(residual),
        "= " + _NumberPrinter(numbers).doprint(residual),
    )


def validate(
    count: int,
    class_seed: int,
    roster: Sequence[str] | None,
    dataset: Dataset | None,
    samples: int,
) -> int:
    """Refuse what cannot make a class set; the number of samples per sheet."""
    if roster is None and not 1 <= count <= MAX_COUNT:
        raise InputError(f"--count must be between 1 and {MAX_COUNT}", count)
    if dataset is not None:
        samples = len(dataset.x)
    if not 1 <= samples <= MAX_SAMPLES:
        raise InputError(f"a sheet takes 1 to {MAX_SAMPLES} samples (to fit one page)", samples)
    if not 0 <= class_seed < 2**32:
        raise InputError("--seed must be between 0 and 2**32 - 1", class_seed)
    return samples


def build_handouts(
    count: int,
    *,
    class_seed: int | None = None,
    roster: Sequence[str] | None = None,
    dataset: Dataset | None = None,
    samples: int = 2,
    lang: str = "en",
    tape: Callable[[Problem], TapeResult] | None = None,
    progress: Callable[[int], None] = lambda _: None,
) -> Handouts:
    """Every sheet of a class, each key checked against the tape.

    Without a class seed one is drawn (and recorded in the Handouts), as for a report:
    a fixed default would give every class the same sheets, year after year.
    """
    if class_seed is None:
        class_seed = draw_seed()
    samples = validate(count, class_seed, roster, dataset, samples)
    if tape is None:
        from ..tape.gradient import gradient_at

        tape = gradient_at
    symbolic = build_symbolic(get_model("linear"), get_loss("mse"))
    sheets = []
    variant = set_variant(samples, dataset)
    for number, spec in enumerate(specs(class_seed, count, roster, variant), start=1):
        sheet = build_sheet(symbolic, spec, dataset, samples)
        sheet = replace(sheet, checks=check_key(symbolic, sheet, tape(sheet.problem)))
        sheets.append(sheet)
        progress(number)
    return Handouts(
        class_seed=class_seed,
        lang=lang,
        samples=samples,
        model=latex(symbolic.prediction),
        loss=symbolic.loss.latex,
        gradients={name: d.result.latex for name, d in symbolic.derivations.items()},
        learning_rate=LEARNING_RATE,
        sheets=tuple(sheets),
    )
