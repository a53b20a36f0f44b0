"""The Report: every number and formula of one explanation, as plain facts (no HTML).

:func:`build_report` is the library entry point; the command line is a thin layer
over it. A Report shows itself as HTML in Jupyter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from .. import __version__
from ..common.i18n import Message
from ..exact import reference, underflow
from ..exact.check import FAIL, INCONCLUSIVE, OVERFLOW, PASS, Bound, Check, compare, rounding_bound
from ..exact.reference import Samples, sample_values
from ..exact.roundings import RoundingFacts, rounding_facts
from ..models.registry import get_loss, get_model
from ..problem.datasets import resolve_dataset
from ..problem.problem import BUILTIN_DATASETS, Dataset, Problem, Training, make_problem
from ..problem.standardize import Standardization
from ..symbolic.derivation import (
    Formula,
    N,
    Symbolic,
    build_symbolic,
    latex,
    verify_equal,
    wrong_formula,
)
from ..tape.gradient import TapeResult
from ..tape.order import Order, assumed_order
from ..tape.training import Trace, train
from .backward import BackwardFacts, explain_backward, stand_in_backward
from .substitution import Substitution, substitute
from .training import TrainingFacts, check_training, reference_trace

MAX_TABLE_ROWS = 20  # beyond this, the per-sample table shows its ends only
EDGE_ROWS = 5
WRITTEN_OUT_CHECK_LIMIT = 200  # samples up to which the written-out formulas are verified


@dataclass(frozen=True)
class StepFacts:
    rule: str  # the rule's name in English (as in the JSON)
    rule_key: str  # its catalogue key
    explanation: Message
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
class DataRow:
    i: int
    x_given: float
    x: float  # as the tape used it
    y_given: float
    y: float


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
    data_rows: tuple[DataRow | None, ...]  # None marks elided rows
    model_name: str = "linear"  # the model's registered name (catalogue key model.<name>)
    loss_name: str = "mse"  # the loss's registered name (catalogue key loss.<name>)
    source_message: Message | None = None  # where the samples came from, to be put in words
    standardized: Standardization | None = None  # the tape saw z-scores of the given data
    mode: str = "eager"  # how the tape ran: eager, function (tf.function) or xla


def shown_rows(n: int) -> list[int | None]:
    """0-based indices of the table rows shown: all up to MAX_TABLE_ROWS, else the ends."""
    if n <= MAX_TABLE_ROWS:
        return list(range(n))
    return [*range(EDGE_ROWS), None, *range(n - EDGE_ROWS, n)]


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
    wrong_derivative: Message | None  # what was made wrong on purpose, if anything
    reference_method: Message
    versions: Mapping[str, str]
    backward: BackwardFacts | None = None  # the tape's backward pass, node by node
    training: TrainingFacts | None = None  # None for --steps 0: the initial check only
    wrong_kind: str | None = None  # the kind of wrong derivative, e.g. "drop-factor-2"
    rounding: RoundingFacts | None = None  # k of each check: the sum's depth and the terms'

    @property
    def gradient_formula(self) -> str:
        """The formula every gradient reference comes from: "derived", or the kind of
        deliberately wrong derivative that replaced it."""
        return self.wrong_kind or "derived"

    @property
    def reference_labels(self) -> tuple[Message, ...]:
        """What each check's reference is, in order of the checks: the loss is always
        exact; a gradient's reference is the exact value of a wrong formula when the
        report demonstrates one, and must not be called exact then."""
        exact = Message.of("reference.exact")
        gradient = (
            exact
            if self.wrong_kind is None
            else Message.of("reference.wrong_formula", kind=self.wrong_kind)
        )
        return (exact, *(gradient for _ in self.checks[1:]))

    @property
    def ok(self) -> bool:
        backward_ok = self.backward is None or self.backward.ok
        training_ok = self.training is None or self.training.ok
        return all(check.ok for check in self.checks) and backward_ok and training_ok

    @property
    def inconclusive(self) -> int:
        """Values within their bound where the bound is at least half the value: the
        initial checks, the backward pass's adjoints and the training steps'."""
        return (
            sum(check.inconclusive for check in self.checks)
            + (self.backward.inconclusive if self.backward is not None else 0)
            + (self.training.inconclusive_checks if self.training is not None else 0)
        )

    @property
    def overflowed(self) -> int:
        """Values that left the dtype's range where a correct tape may (not ok)."""
        return (
            sum(check.overflowed for check in self.checks)
            + (self.backward.overflowed if self.backward is not None else 0)
            + (self.training.overflowed_checks if self.training is not None else 0)
        )

    @property
    def verdict(self) -> str:
        """fail, overflow (and nothing else failed), inconclusive (nothing failed, some
        value cannot be told from one off by a factor 2) or pass."""
        if not self.ok:
            initial = all(c.ok or c.overflowed for c in self.checks)
            backward = self.backward is None or self.backward.ok or self.backward.only_overflowed
            training = (
                self.training is None
                or self.training.ok
                or (
                    self.training.failed_checks == self.training.overflowed_checks
                    # values that overflowed at step 0 leave nothing to train on
                    and self.training.diverged_at in (None, 0)
                    and (
                        self.training.diverged_at is None or any(c.overflowed for c in self.checks)
                    )
                )
            )
            return OVERFLOW if initial and backward and training and self.overflowed else FAIL
        return INCONCLUSIVE if self.inconclusive else PASS

    def to_dict(self) -> dict[str, Any]:
        from .todict import report_to_dict

        return report_to_dict(self)

    def _repr_html_(self) -> str:
        from ..render.notebook import to_notebook_html

        return to_notebook_html(self)


def _source_message(dataset: Dataset) -> Message:
    """Where the samples came from: a built-in set or inline values by name, else as given."""
    if BUILTIN_DATASETS.get(dataset.name) == dataset:
        return Message.of(f"dataset.{dataset.name}")
    if dataset.origin is not None:
        return dataset.origin
    if dataset.name == "inline":
        return Message.of("dataset.inline")
    return Message.of("dataset.other", source=dataset.source)


def _gradient_lhs(parameter: str) -> str:
    return rf"\frac{{\partial L}}{{\partial {parameter}}}"


def _derivation_facts(symbolic: Symbolic, n: int) -> tuple[GradientDerivation, ...]:
    # The formula for this n must be the derivative of the loss for this n. Checking
    # very long written-out sums costs time (SymPy) and adds no insight.
    written_loss = symbolic.loss.written_out(n) if n <= WRITTEN_OUT_CHECK_LIMIT else None
    facts = []
    for name, derivation in symbolic.derivations.items():
        concrete_ok = written_loss is None or verify_equal(
            derivation.result.written_out(n),
            written_loss.diff(derivation.symbol),
        )
        facts.append(
            GradientDerivation(
                parameter=name,
                lhs=_gradient_lhs(name),
                steps=tuple(
                    StepFacts(s.rule, s.rule_key, s.explanation, s.latex, s.note, s.verified)
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
    samples: Samples,
    means: Mapping[str, Fraction],
) -> SampleTable:
    """The per-sample table; `means` holds the loss ("L") and each gradient, already known."""
    n = samples.n
    indices = shown_rows(n)
    elided = n - sum(k is not None for k in indices)
    shown = [k for k in indices if k is not None]

    def at_shown(expr: sp.Expr) -> dict[int, Fraction]:
        return dict(
            zip(shown, sample_values(symbolic, expr, parameters, samples, shown), strict=True)
        )

    predictions = at_shown(symbolic.prediction)
    residuals = at_shown(symbolic.residual)
    loss_terms = at_shown(symbolic.loss.summand)
    shares: dict[str, dict[int, Fraction]] = {}
    headers: dict[str, str] = {}
    r_i = sp.Symbol("r_{i}")
    for name, formula in formulas.items():
        # A sample's share is n * coefficient * summand: the mean of the shares is the gradient.
        scale = Fraction(str(formula.coefficient.subs(N, n) * n))
        shares[name] = {k: scale * v for k, v in at_shown(formula.summand).items()}
        header = formula.coefficient * N * formula.summand.xreplace({symbolic.residual: r_i})
        headers[name] = latex(header)
    rows = tuple(
        None
        if k is None
        else SampleRow(
            i=k + 1,
            x=float(samples.x[k]),
            y=float(samples.y[k]),
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
        mean_loss_term=float(means["L"]),
        mean_shares={name: float(means[name]) for name in formulas},
    )


def _problem_facts(problem: Problem, symbolic: Symbolic) -> ProblemFacts:
    model = get_model(problem.model)
    return ProblemFacts(
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
        model_name=model.name,
        loss_name=problem.loss,
        source_message=_source_message(problem.dataset),
        standardized=problem.standardized,
        mode=problem.mode,
        data_rows=tuple(
            None
            if k is None
            else DataRow(
                k + 1, problem.dataset.x[k], problem.x[k], problem.dataset.y[k], problem.y[k]
            )
            for k in shown_rows(problem.n)
        ),
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


@dataclass(frozen=True)
class Groundwork:
    """Everything of a report that needs no tape: derived, substituted, referenced."""

    problem: Problem
    wrong_derivative: str | None
    symbolic: Symbolic
    samples: Samples
    formulas: Mapping[str, Formula]
    quantities: tuple[tuple[str, str, str, Formula], ...]  # key, name, LaTeX lhs, formula
    references: Mapping[str, Fraction]
    bounds: tuple[Bound, ...]  # with the order the draft assumes (assumed_order)
    substitutions: tuple[Substitution, ...]
    facts: ProblemFacts
    derivations: tuple[GradientDerivation, ...]
    table: SampleTable
    magnitudes: tuple[Fraction, ...] = ()  # M of each quantity
    flushes: tuple[Fraction, ...] = ()  # S of each quantity

    def bounds_for(self, order: Order | None) -> tuple[Bound, ...]:
        """The bounds of the quantities with k counted for `order` (None: not known)."""
        problem = self.problem
        counts = rounding_facts(problem.n, problem.dtype, order, problem.model, problem.loss)
        return tuple(
            rounding_bound(
                problem.n,
                problem.dtype,
                magnitude,
                flushes,
                self.samples.exact,
                roundings=counts.roundings[key],
            )
            for (key, *_), magnitude, flushes in zip(
                self.quantities, self.magnitudes, self.flushes, strict=True
            )
        )


def prepare(problem: Problem, wrong_derivative: str | None = None) -> Groundwork:
    """Derive, substitute and compute the exact references: all that comes before the tape."""
    symbolic = symbolic_for(problem)
    samples = Samples.of(problem.x, problem.y)
    parameters = {name: Fraction(v) for name, v in problem.initial.values.items()}
    formulas = formulas_for(symbolic, wrong_derivative)

    quantities = [("L", "L", "L", symbolic.loss)] + [
        (name, f"dL/d{name}", _gradient_lhs(name), formulas[name]) for name in formulas
    ]
    substitutions = []
    references: dict[str, Fraction] = {}
    magnitudes, sensitivities = [], []
    for key, quantity, lhs, formula in quantities:
        exact = references[key] = reference.value(symbolic, formula, parameters, samples)
        substitutions.append(
            substitute(symbolic, quantity, lhs, formula, parameters, samples, exact)
        )
        magnitudes.append(reference.magnitude(symbolic, formula, parameters, samples))
        sensitivities.append(
            underflow.at_initial_values(
                problem, symbolic, underflow.sensitivities(symbolic).of_quantity(key)
            )
        )
    ground = Groundwork(
        problem=problem,
        wrong_derivative=wrong_derivative,
        symbolic=symbolic,
        samples=samples,
        formulas=formulas,
        quantities=tuple(quantities),
        references=references,
        bounds=(),
        substitutions=tuple(substitutions),
        facts=_problem_facts(problem, symbolic),
        derivations=_derivation_facts(symbolic, problem.n),
        table=_sample_table(symbolic, formulas, parameters, samples, references),
        magnitudes=tuple(magnitudes),
        flushes=tuple(sensitivities),
    )
    return replace(ground, bounds=ground.bounds_for(assumed_order(problem.mode)))


def complete(
    ground: Groundwork,
    tape_result: TapeResult,
    run: Trace | None = None,
    on_step: Callable[[int, int], None] | None = None,
    *,
    backward: bool = True,
) -> Report:
    """The report, once the tape's numbers are here: its first gradient (`tape_result`)
    and, with `run`, the training run to check step by step."""
    problem, formulas = ground.problem, ground.formulas
    # k as the tape reported how it added up (the training run's, or the first
    # gradient's); a tape that says nothing gets the order-free n - 1.
    order = run.order if run is not None and run.order is not None else tape_result.order
    tape_values = [tape_result.loss, *(tape_result.gradients[name] for name in formulas)]
    checks = [
        compare(
            quantity,
            ground.references[key],
            tape_value,
            bound,
            problem.dtype,
            summed=problem.n if key == "L" else 1,  # the tape's mean: a sum, then / n
        )
        for (key, quantity, _, _), bound, tape_value in zip(
            ground.quantities, ground.bounds_for(order), tape_values, strict=True
        )
    ]
    backward_facts = (
        explain_backward(
            problem,
            ground.symbolic,
            formulas,
            tape_result,
            ground.samples,
            run.backward if run else None,
            order,
        )
        if backward
        else None
    )
    wrong = ground.wrong_derivative
    return Report(
        problem=ground.facts,
        derivations=ground.derivations,
        substitutions=ground.substitutions,
        samples=ground.table,
        checks=tuple(checks),
        wrong_derivative=(Message.of(f"wrong.{wrong}") if wrong else None),
        wrong_kind=wrong,
        reference_method=reference.method(ground.samples, problem.dtype),
        versions={
            "derive": __version__,
            "tensorflow": tape_result.tensorflow_version,
            "sympy": sp.__version__,
            "numpy": np.__version__,
        },
        backward=backward_facts,
        training=(
            check_training(problem, ground.symbolic, formulas, run, on_step)
            if run is not None and problem.training.steps > 0
            else None
        ),
        rounding=rounding_facts(
            problem.n,
            problem.dtype,
            order,
            problem.model,
            problem.loss,
            float_reference=not ground.samples.exact,
        ),
    )


def draft(ground: Groundwork) -> Report:
    """The report with stand-ins for the tape: exact references rounded to the dtype
    for its gradients, one training step, and the backward replay done in NumPy
    (:func:`derive.report.backward.stand_in_backward`). Everything the tape does not change
    is as it will be, so rendering the draft renders (and caches) those formulas early."""
    problem = ground.problem
    steps = min(problem.training.steps, 1)
    short = replace(problem, training=replace(problem.training, steps=steps))
    replay = stand_in_backward(problem, ground.symbolic)
    stand_in = replace(
        reference_trace(short, ground.symbolic, ground.formulas),
        backward=replay,
        order=assumed_order(problem.mode),
    )
    # The first gradient as the replay computed it, so that the two agree as on the tape.
    first = stand_in.at(0)
    output = list(replay.values)[-1]  # values are in the graph's order; the loss is last
    first = replace(
        first,
        loss=float(replay.values[output][0]),
        gradients={name: float(replay.adjoints[name][0]) for name in first.gradients},
    )
    return complete(replace(ground, problem=short), first, stand_in)


def explain(
    problem: Problem,
    wrong_derivative: str | None = None,
    trace: Trace | Callable[[], Trace] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    *,
    tape: Callable[[Problem], TapeResult] | None = None,
    backward: bool = True,
) -> Report:
    """Derive, substitute and check: the gradient at the initial values, the tape's
    backward pass, then every training step.

    `trace` is the tape's training run (derive.tape.training.train), or a function that
    returns it -- called only once everything that needs no tape is done; without
    one, TensorFlow runs here. `on_step(done, total)` follows the step checks. `tape`
    replaces the tape's first gradient by another computation (tests use a float32
    emulation); there is no training then. `backward` adds the tape's backward pass,
    node by node.
    """
    ground = prepare(problem, wrong_derivative)
    if tape is not None:
        return complete(ground, tape(problem), None, on_step, backward=backward)
    run = train(problem) if trace is None else trace() if callable(trace) else trace
    return complete(ground, run.at(0), run, on_step, backward=backward)


def build_report(
    data: str | Path | Dataset | None = None,
    *,
    x: Sequence[float] | None = None,
    y: Sequence[float] | None = None,
    init: Mapping[str, float] | None = None,
    seed: int | None = None,
    dtype: str = "float32",
    name: str | None = None,
    training: Training | None = None,
    wrong_derivative: str | None = None,
    backward: bool = True,
    standardize: bool = False,
    mode: str = "eager",
) -> Report:
    """Explain ``tape.gradient(loss, [W, b])`` for a data set; see the README for the fields.

    >>> report = build_report("single", init={"W": 0.21318328, "b": 0.78609025})
    >>> report.ok
    True
    """
    dataset = resolve_dataset(data, x, y)
    problem = make_problem(
        dataset,
        dtype=dtype,
        init=init,
        seed=seed,
        name=name,
        training=training,
        standardize=standardize,
        mode=mode,
    )
    return explain(problem, wrong_derivative, backward=backward)
