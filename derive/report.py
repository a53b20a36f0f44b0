"""The Report: every number and formula of one explanation, as plain facts (no HTML).

:func:`build_report` is the library entry point; the command line is a thin layer
over it. A Report shows itself as HTML in Jupyter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from . import __version__
from .check import Check, compare, rounding_bound
from .datasets import resolve_dataset
from .models import get_loss, get_model
from .problem import Dataset, Problem, Training, make_problem
from .substitute import Substitution, substitute
from .symbolic import (
    WRONG_DERIVATIVES,
    Formula,
    N,
    Symbolic,
    build_symbolic,
    evaluate_exact,
    evaluate_magnitude,
    latex,
    verify_equal,
    wrong_formula,
)
from .tape import TapeResult, Trace, train
from .training import TrainingFacts, check_training

MAX_TABLE_ROWS = 20  # beyond this, the per-sample table shows its ends only
EDGE_ROWS = 5


@dataclass(frozen=True)
class StepFacts:
    rule: str
    explanation: str
    latex: str
    note: str
    verified: bool


@dataclass(frozen=True)
class GradientDerivation:
    parameter: str
    lhs: str  # \frac{\partial L}{\partial W}
    steps: tuple[StepFacts, ...]
    result: str  # the general-n formula
    written_out: str  # the same for this n
    written_out_verified: bool  # d/dW of the written-out loss equals the written-out formula
    verified: bool


@dataclass(frozen=True)
class ProblemFacts:
    name: str
    source: str
    n: int
    dtype: str
    x_given: tuple[float, ...]
    y_given: tuple[float, ...]
    x: tuple[float, ...]
    y: tuple[float, ...]
    init: Mapping[str, float]
    init_source: str
    seed: int | None
    model: str
    loss: str
    prediction: str  # LaTeX of y_hat_i
    loss_general: str  # LaTeX of L for general n
    loss_written_out: str  # LaTeX of L for this n


@dataclass(frozen=True)
class SampleRow:
    i: int
    x: float
    y: float
    prediction: float
    residual: float
    loss_term: float
    shares: Mapping[str, float]  # each parameter's per-sample term; their mean is the gradient


@dataclass(frozen=True)
class SampleTable:
    share_headers: Mapping[str, str]  # LaTeX, e.g. 2 r_i x_i
    rows: tuple[SampleRow | None, ...]  # None marks elided rows
    elided: int
    mean_loss_term: float
    mean_shares: Mapping[str, float]


@dataclass(frozen=True)
class Report:
    problem: ProblemFacts
    derivations: tuple[GradientDerivation, ...]
    substitutions: tuple[Substitution, ...]
    samples: SampleTable
    checks: tuple[Check, ...]  # the loss first, then one per parameter
    wrong_derivative: str | None  # what was made wrong on purpose, if anything
    reference_method: str
    versions: Mapping[str, str]
    training: TrainingFacts | None = None  # None for --steps 0: the initial check only

    @property
    def ok(self) -> bool:
        training_ok = self.training is None or self.training.ok
        return all(check.ok for check in self.checks) and training_ok

    def to_dict(self) -> dict[str, Any]:
        from .jsonout import report_to_dict

        return report_to_dict(self)

    def _repr_html_(self) -> str:
        from .render import to_html

        return to_html(self)


def _gradient_lhs(parameter: str) -> str:
    return rf"\frac{{\partial L}}{{\partial {parameter}}}"


def _derivation_facts(symbolic: Symbolic, n: int) -> tuple[GradientDerivation, ...]:
    written_loss = symbolic.loss.written_out(n)
    facts = []
    for name, derivation in symbolic.derivations.items():
        # The formula for this n must be the derivative of the loss for this n.
        # Checking very long written-out sums adds time and no insight.
        concrete_ok = n > 200 or verify_equal(
            derivation.result.written_out(n),
            written_loss.diff(derivation.symbol),
        )
        facts.append(
            GradientDerivation(
                parameter=name,
                lhs=_gradient_lhs(name),
                steps=tuple(
                    StepFacts(s.rule, s.explanation, s.latex, s.note, s.verified)
                    for s in derivation.steps
                ),
                result=derivation.result.latex,
                written_out=derivation.result.written_out_latex(n),
                written_out_verified=concrete_ok,
                verified=derivation.verified and concrete_ok,
            )
        )
    return tuple(facts)


def _sample_table(
    symbolic: Symbolic,
    formulas: Mapping[str, Formula],
    parameters: Mapping[str, Fraction],
    xs: Sequence[Fraction],
    ys: Sequence[Fraction],
) -> SampleTable:
    n = len(xs)

    def per_sample(expr: sp.Expr) -> list[Fraction]:
        return evaluate_exact(symbolic, Formula(sp.Integer(1), expr), parameters, xs, ys)[1]

    predictions = per_sample(symbolic.prediction)
    residuals = per_sample(symbolic.residual)
    loss_terms = evaluate_exact(symbolic, symbolic.loss, parameters, xs, ys)[1]
    shares: dict[str, list[Fraction]] = {}
    headers: dict[str, str] = {}
    r_i = sp.Symbol("r_{i}")
    for name, formula in formulas.items():
        # A sample's share is n * coefficient * summand: the mean of the shares is the gradient.
        scale = Fraction(str(formula.coefficient.subs(N, n) * n))
        _, terms = evaluate_exact(symbolic, formula, parameters, xs, ys)
        shares[name] = [scale * t for t in terms]
        header = formula.coefficient * N * formula.summand.xreplace({symbolic.residual: r_i})
        headers[name] = latex(header)
    indices: list[int | None] = list(range(n))
    elided = 0
    if n > MAX_TABLE_ROWS:
        indices = [*range(EDGE_ROWS), None, *range(n - EDGE_ROWS, n)]
        elided = n - 2 * EDGE_ROWS
    rows = tuple(
        None
        if k is None
        else SampleRow(
            i=k + 1,
            x=float(xs[k]),
            y=float(ys[k]),
            prediction=float(predictions[k]),
            residual=float(residuals[k]),
            loss_term=float(loss_terms[k]),
            shares={name: float(values[k]) for name, values in shares.items()},
        )
        for k in indices
    )
    return SampleTable(
        share_headers=headers,
        rows=rows,
        elided=elided,
        mean_loss_term=float(sum(loss_terms, Fraction(0)) / n),
        mean_shares={name: float(sum(v, Fraction(0)) / n) for name, v in shares.items()},
    )


@cache
def _symbolic(model: str, loss: str) -> Symbolic:
    return build_symbolic(get_model(model), get_loss(loss))


def symbolic_for(problem: Problem) -> Symbolic:
    """The problem's model and loss made symbolic (built once per process)."""
    return _symbolic(problem.model, problem.loss)


def formulas_for(symbolic: Symbolic, wrong_derivative: str | None = None) -> dict[str, Formula]:
    """The derived gradient formulas, or deliberately wrong ones for the demonstration."""
    formulas = {name: d.result for name, d in symbolic.derivations.items()}
    if wrong_derivative is not None:
        formulas = {name: wrong_formula(f, wrong_derivative) for name, f in formulas.items()}
    return formulas


def explain(
    problem: Problem,
    wrong_derivative: str | None = None,
    trace: Trace | Callable[[], Trace] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Report:
    """Derive, substitute and check: the gradient at the initial values, then every
    training step.

    `trace` is the tape's training run (derive.tape.train), or a function that
    returns it -- called only once everything that needs no tape is done, so that a
    run in another process overlaps this work; without one, TensorFlow runs here.
    `on_step(done, total)` follows the step checks.
    """
    symbolic = symbolic_for(problem)
    xs, ys = problem.exact(problem.x), problem.exact(problem.y)
    parameters = {name: Fraction(v) for name, v in problem.initial.values.items()}
    formulas = formulas_for(symbolic, wrong_derivative)

    quantities = [("L", "L", symbolic.loss)] + [
        (f"dL/d{name}", _gradient_lhs(name), formulas[name]) for name in formulas
    ]
    substitutions = []
    references = []
    for quantity, lhs, formula in quantities:
        substitutions.append(substitute(symbolic, quantity, lhs, formula, parameters, xs, ys))
        reference, _ = evaluate_exact(symbolic, formula, parameters, xs, ys)
        magnitude = evaluate_magnitude(symbolic, formula, parameters, xs, ys)
        references.append((reference, rounding_bound(problem.n, problem.dtype, magnitude)))

    model = get_model(problem.model)
    facts = ProblemFacts(
        name=problem.name,
        source=problem.dataset.source,
        n=problem.n,
        dtype=problem.dtype,
        x_given=problem.dataset.x,
        y_given=problem.dataset.y,
        x=problem.x,
        y=problem.y,
        init=dict(problem.initial.values),
        init_source=problem.initial.source,
        seed=problem.initial.seed,
        model=model.title,
        loss=get_loss(problem.loss).title,
        prediction=latex(symbolic.prediction),
        loss_general=symbolic.loss.latex,
        loss_written_out=symbolic.loss.written_out_latex(problem.n),
    )
    derivations = _derivation_facts(symbolic, problem.n)
    samples = _sample_table(symbolic, formulas, parameters, xs, ys)

    # Everything above needs no tape; from here on the tape's numbers are needed.
    if trace is None:
        trace = train(problem)
    elif callable(trace):
        trace = trace()
    tape: TapeResult = trace.at(0)
    tape_values = [tape.loss, *(tape.gradients[name] for name in formulas)]
    checks = [
        compare(quantity, reference, tape_value, bound, problem.dtype)
        for (quantity, _, _), (reference, bound), tape_value in zip(
            quantities, references, tape_values, strict=True
        )
    ]
    return Report(
        problem=facts,
        derivations=derivations,
        substitutions=tuple(substitutions),
        samples=samples,
        checks=tuple(checks),
        wrong_derivative=WRONG_DERIVATIVES[wrong_derivative] if wrong_derivative else None,
        reference_method=(
            "exact rational arithmetic at the "
            f"{problem.dtype} values the tape used (no rounding at all)"
        ),
        versions={
            "derive": __version__,
            "tensorflow": trace.tensorflow_version,
            "sympy": sp.__version__,
            "numpy": np.__version__,
        },
        training=(
            check_training(problem, symbolic, formulas, trace, on_step)
            if problem.training.steps > 0
            else None
        ),
    )


def build_report(
    data: str | Path | Dataset = "seed",
    *,
    x: Sequence[float] | None = None,
    y: Sequence[float] | None = None,
    init: Mapping[str, float] | None = None,
    seed: int | None = None,
    dtype: str = "float32",
    name: str | None = None,
    training: Training | None = None,
    wrong_derivative: str | None = None,
) -> Report:
    """Explain ``tape.gradient(loss, [W, b])`` for a data set; see the README for the fields.

    >>> report = build_report("single", init={"W": 0.21318328, "b": 0.78609025})
    >>> report.ok
    True
    """
    dataset = resolve_dataset(data, x, y)
    problem = make_problem(
        dataset, dtype=dtype, init=init, seed=seed, name=name, training=training
    )
    return explain(problem, wrong_derivative)

