"""Handouts for a class: one exercise sheet per student, and its answer key.

Each sheet has its own samples and initial values, drawn reproducibly from the class
seed and the sheet's index (or the student's name). The key holds every value the
student works out -- each sample's residual, its square and its shares, the means, one
SGD step -- twice, in exact arithmetic: at the printed decimals (what the boxes show)
and at their float32 roundings (what the tape uses, checked against ``tape.gradient``).
This module builds the sheets and the set from the pieces beside it (draw, keys,
roster); nothing here is about HTML, templates/handouts/ shows the facts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from fractions import Fraction

import sympy as sp

from ..common.errors import InputError
from ..models.registry import DEFAULT_LOSS, DEFAULT_MODEL, get_loss, get_model
from ..problem.problem import Dataset, Problem, draw_seed, make_problem
from ..report.substitution import NumberPrinter
from ..symbolic.derivation import Formula, I, N, Symbolic, Y, build_symbolic, latex
from ..tape.gradient import TapeResult
from .draw import draw_dataset, draw_initial, set_variant, specs
from .facts import (
    LEARNING_RATE,
    MAX_COUNT,
    MAX_FEATURES,
    MAX_SAMPLES,
    MAX_SAMPLES_BY_FEATURES,
    Handouts,
    Sheet,
    SheetSpec,
    as_decimal,
)
from .keys import check_key, hand_key, tape_key


def build_sheet(
    symbolic: Symbolic, spec: SheetSpec, dataset: Dataset | None, samples: int
) -> Sheet:
    features = symbolic.model.features
    data = dataset if dataset is not None else draw_dataset(spec, samples, features)
    model, loss = symbolic.model, symbolic.loss_definition
    init = _off_the_kinks(symbolic, draw_initial(spec, model.parameters), data)
    problem = make_problem(data, init=init, name=spec.identifier, model=model.name, loss=loss.name)
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
            _residual_lines(symbolic, k, init, data) for k in range(1, len(data.y) + 1)
        ),
    )


def _off_the_kinks(symbolic: Symbolic, init: dict[str, float], data: Dataset) -> dict[str, float]:
    """The drawn values, with b moved by 0.01 while a printed residual sits exactly on a
    kink of the loss (r = 0 for |r|): there the tape's branch is decided by rounding,
    which no hand calculation can follow. Residuals at the printed decimals are
    multiples of 0.001, so any other one is far from a kink beside float32's rounding."""
    kinks = [Fraction(k) for k in symbolic.loss_definition.kinks]
    residual = symbolic.sample_function(symbolic.residual)
    while kinks and "b" in init:
        values = [as_decimal(init[name]) for name in symbolic.parameters]
        columns = [list(map(as_decimal, c)) for c in (*data.columns, data.y)]
        rows = zip(*columns, strict=True)
        if not any(Fraction(residual(*values, *row)) in kinks for row in rows):
            break
        init = {**init, "b": round(init["b"] + 0.01, 2)}
    return init


def _residual_lines(
    symbolic: Symbolic, k: int, init: Mapping[str, float], data: Dataset
) -> tuple[str, str]:
    """r_k = (the residual's formula) and = (the same with the sheet's numbers)."""
    residual = symbolic.residual.subs(I, k)
    numbers: dict[sp.Basic, Fraction] = {
        symbolic.parameters[name]: as_decimal(value) for name, value in init.items()
    }
    features = [f.subs(I, k) for f in symbolic.features]
    values = [as_decimal(c[k - 1]) for c in data.columns]
    numbers.update(zip(features, values, strict=True))
    numbers[Y[k]] = as_decimal(data.y[k - 1])
    return (
        f"r_{{{k}}} = " + latex(residual),
        "= " + NumberPrinter(numbers).doprint(residual),
    )


def validate(
    count: int,
    class_seed: int,
    roster: Sequence[str] | None,
    dataset: Dataset | None,
    samples: int,
    features: int = 1,
) -> int:
    """Refuse what cannot make a class set; the number of samples per sheet."""
    if roster is None and not 1 <= count <= MAX_COUNT:
        raise InputError(f"--count must be between 1 and {MAX_COUNT}", count)
    if dataset is not None:
        samples, features = len(dataset.y), dataset.k
        if features > MAX_FEATURES:
            raise InputError(
                f"a sheet takes 1 to {MAX_FEATURES} features (to fit one page)", features
            )
    elif not 1 <= features <= MAX_FEATURES:
        raise InputError(f"--features must be 1 to {MAX_FEATURES} (to fit one page)", features)
    most = MAX_SAMPLES_BY_FEATURES.get(features, MAX_SAMPLES)
    if not 1 <= samples <= most:
        with_features = "" if features == 1 else f" with {features} features"
        raise InputError(
            f"a sheet takes 1 to {most} samples{with_features} (to fit one page)", samples
        )
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
    model: str = DEFAULT_MODEL,
    loss: str = DEFAULT_LOSS,
    tape: Callable[[Problem], TapeResult] | None = None,
    progress: Callable[[int], None] = lambda _: None,
    features: int = 1,
) -> Handouts:
    """Every sheet of a class, each key checked against the tape; `model` and `loss` name
    registered entries, read as the report reads them.

    Without a class seed one is drawn (and recorded in the Handouts), as for a report:
    a fixed default would give every class the same sheets, year after year.
    """
    if class_seed is None:
        class_seed = draw_seed()
    if dataset is not None:
        features = dataset.k
    samples = validate(count, class_seed, roster, dataset, samples, features)
    # Looked up before anything is drawn: an unknown name is bad input, like a report's.
    symbolic = build_symbolic(get_model(model, features), get_loss(loss, None, features))
    if tape is None:
        from ..tape.gradient import gradient_at

        tape = gradient_at
    sheets = []
    # Another loss, other keys: its sheets get other identifiers
    variant = set_variant(samples, dataset) + ("" if loss == DEFAULT_LOSS else f"|loss:{loss}")
    variant += "" if features == 1 else f"|features:{features}"
    for number, spec in enumerate(specs(class_seed, count, roster, variant), start=1):
        sheet = build_sheet(symbolic, spec, dataset, samples)
        sheet = replace(sheet, checks=check_key(symbolic, sheet, tape(sheet.problem)))
        sheets.append(sheet)
        progress(number)

    # A loss with branches (Huber) is written in r_i, so that h and h' name the cases
    # the intro defines: written in W, b, x_i, y_i each formula is a tall table of cases
    def shown(formula: Formula) -> str:
        if not formula.summand.has(sp.Piecewise):
            return formula.latex
        r_i = sp.Symbol("r_{i}")
        return replace(formula, summand=formula.summand.xreplace({symbolic.residual: r_i})).latex

    return Handouts(
        class_seed=class_seed,
        lang=lang,
        samples=samples,
        model=latex(symbolic.prediction),
        loss=shown(symbolic.loss),
        term=latex(symbolic.loss_definition.outer(sp.Symbol("r_{i}"))),
        model_name=symbolic.model.name,
        model_title=symbolic.model.title,
        gradients={name: shown(d.result) for name, d in symbolic.derivations.items()},
        learning_rate=LEARNING_RATE,
        sheets=tuple(sheets),
        keys=symbolic.loss_definition.handout_keys,
    )
