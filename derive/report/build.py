"""The Report: every number and formula of one explanation, as plain facts (no HTML).

:func:`build_report` is the library entry point; the command line is a thin layer
over it. A Report shows itself as HTML in Jupyter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy as sp

from ..common.errors import InputError
from ..common.i18n import Message
from ..common.version import __version__
from ..exact import reference, underflow
from ..exact.check import Bound, Reach, compare, rounding_bound
from ..exact.kinks import KinkWatch
from ..exact.reach import ForwardReach
from ..exact.reference import Samples
from ..exact.roundings import rounding_facts
from ..models.registry import DEFAULT_LOSS
from ..problem.datasets import resolve_dataset
from ..problem.problem import Dataset, Problem, Training, make_problem
from ..symbolic.derivation import (
    Formula,
    Symbolic,
    build_symbolic,
    wrong_formula,
)
from ..tape.gradient import TapeResult
from ..tape.order import Order, assumed_order
from ..tape.training import Trace, train
from .backward import explain_backward, stand_in_backward
from .condensed import worked_in_full
from .document import Report
from .facts import (
    GradientDerivation,
    ProblemFacts,
    SampleTable,
)
from .sections import derivation_facts, gradient_lhs, problem_facts, sample_table
from .substitution import Substitution, substitute
from .training import check_training, reference_trace


def symbolic_for(problem: Problem) -> Symbolic:
    """The problem's model and loss entries made symbolic (built once per process and
    entry: :func:`build_symbolic` is cached by the entries, not by their names)."""
    return build_symbolic(problem.model_entry, problem.loss_entry)


def formulas_for(symbolic: Symbolic, wrong_derivative: str | None = None) -> dict[str, Formula]:
    """The derived gradient formulas, or deliberately wrong ones for the demonstration."""
    formulas = {name: d.result for name, d in symbolic.derivations.items()}
    offered = symbolic.loss_definition.wrong_derivatives
    if wrong_derivative is not None and wrong_derivative not in offered:
        # r-for-sign on the squared error would change nothing: a "wrong" formula that is right
        raise InputError(
            f"unknown kind of wrong derivative for --loss {symbolic.loss_definition.name}; "
            "choose " + ", ".join(offered),
            wrong_derivative,
        )
    if wrong_derivative is not None:
        formulas = {name: wrong_formula(f, wrong_derivative) for name, f in formulas.items()}
    return formulas


def _refuse_harmless(
    symbolic: Symbolic,
    wrong_derivative: str,
    references: Mapping[str, Fraction],
    parameters: Mapping[str, Fraction],
    samples: Samples,
) -> None:
    """A wrong derivative that gives the right values here would pass its check, and the
    demonstration would show nothing (Huber's r for delta sign(r) when every sample lies
    in the quadratic branch): refused, with what to change."""
    right = formulas_for(symbolic)
    if all(
        reference.value(symbolic, right[name], parameters, samples) == references[name]
        for name in right
    ):
        raise InputError(
            "--wrong-derivative changes no value here, so no check can catch it; try other --init",
            wrong_derivative,
        )


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
        counts = rounding_facts(
            problem.n, problem.dtype, order, problem.model_entry, problem.loss_entry
        )
        return tuple(
            rounding_bound(
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
    samples = Samples.of_problem(problem)
    parameters = {name: Fraction(v) for name, v in problem.initial.values.items()}
    formulas = formulas_for(symbolic, wrong_derivative)

    quantities = [("L", "L", "L", symbolic.loss)] + [
        (name, f"dL/d{name}", gradient_lhs(name), formulas[name]) for name in formulas
    ]
    substitutions = []
    full = worked_in_full(tuple(symbolic.parameters))
    references: dict[str, Fraction] = {}
    magnitudes, sensitivities = [], []
    for key, quantity, lhs, formula in quantities:
        exact = references[key] = reference.value(symbolic, formula, parameters, samples)
        worked = substitute(symbolic, quantity, lhs, formula, parameters, samples, exact)
        substitutions.append(replace(worked, in_full=key == "L" or key in full))
        magnitudes.append(reference.magnitude(symbolic, formula, parameters, samples))
        sensitivities.append(
            underflow.at_initial_values(
                problem, symbolic, underflow.sensitivities(symbolic).of_quantity(key)
            )
        )
    if wrong_derivative is not None:
        _refuse_harmless(symbolic, wrong_derivative, references, parameters, samples)
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
        facts=problem_facts(problem, symbolic),
        derivations=derivation_facts(symbolic, problem.n),
        table=sample_table(symbolic, formulas, parameters, samples, references),
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
    # A residual within its rounding error of a kink: the gradients cannot be judged
    initial = [Fraction(problem.initial.values[name]) for name in ground.symbolic.parameters]
    kink = KinkWatch(ground.symbolic, problem.columns, problem.y, problem.dtype).near(initial)

    def forward() -> Reach:  # asked only of a non-finite tape value
        return ForwardReach(ground.symbolic, problem.columns, problem.y, problem.dtype).at(initial)

    checks = [
        compare(
            quantity,
            ground.references[key],
            tape_value,
            bound,
            problem.dtype,
            summed=problem.n if key == "L" else 1,  # the tape's mean: a sum, then / n
            kink=None if key == "L" else kink,
            forward=forward,
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
    if backward_facts is not None and wrong:
        backward_facts = replace(backward_facts, wrong_kind=wrong)
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
            problem.model_entry,
            problem.loss_entry,
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
    loss: str = DEFAULT_LOSS,
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
        loss=loss,
    )
    return explain(problem, wrong_derivative, backward=backward)
