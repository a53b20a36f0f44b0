"""The tape's own calculation as report facts: the backward pass node by node.

TensorFlow's adjoints (:func:`derive.tape.backward.backward_at`) are set against the symbolic
ones of :mod:`derive.symbolic.adjoints`, evaluated exactly, with a tolerance gamma_k * M from
the rounding-error bound of the float computation. The facts also carry the LaTeX the
report shows: each op's local rule, with the tape's numbers put in, and the sums over
the samples that make the gradients of W and b.

Beyond ``reference.EXACT_LIMIT`` samples the references are float64 pairs with a
stated error (:func:`derive.exact.adjoint_values.fast_references`) and every sample is checked at
once with NumPy; :class:`Check` objects (exact differences) are built for every sample up
to LISTED_LIMIT samples, beyond that only for those the report shows (the table rows
and the worst sample of each node).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from ..common.i18n import Message
from ..exact import underflow
from ..exact.adjoint_values import (
    FLOAT_ALLOWANCE,
    FloatReference,
    exact_references,
    fast_references,
)
from ..exact.kinks import KinkWatch
from ..exact.reach import ForwardReach
from ..exact.reference import Samples
from ..exact.roundings import rounding_counts
from ..symbolic.adjoints import (
    SymbolicBackward,
    Vertex,
    derive_adjoints,
    direct_adjoint,
    graph_of,
    is_zero,
    matches_definition,
    op_vertices,
)
from ..symbolic.derivation import Y_I, Formula, N, Symbolic
from ..symbolic.derivation import shown_terms as _shown_terms
from .backward_checks import Verdicts, float_node_check, float_verdicts, node_check, table_rows
from .backward_facts import (
    BackwardFacts,
    BackwardStep,
    BroadcastSum,
    NodeFacts,
    Values,
)
from .backward_steps import StepWriter, partial_of
from .condensed import worked_in_full
from .sections import shown_latex

if TYPE_CHECKING:
    from ..models.ops import Node
    from ..problem.problem import Problem
    from ..tape.backward import BackwardTrace
    from ..tape.gradient import TapeResult
    from ..tape.order import Order


_LEAF_OPS = {
    "parameter": ("variable", "tf.Variable"),
    "data": ("constant", "tf.constant"),
    "constant": ("constant", "tf.constant"),  # a loss's scalar (Huber's delta, 1/2)
}


def build_backward(
    problem: Problem,
    symbolic: Symbolic,
    formulas: Mapping[str, Formula],
    trace: BackwardTrace,
    script: TapeResult,
    backward: SymbolicBackward | None = None,
    *,
    samples: Samples | None = None,
    order: Order | None = None,
) -> BackwardFacts:
    """The facts of the backward section from the tape's trace and the symbolic adjoints.

    `formulas` are the core report's derivatives (deliberately wrong ones included);
    `backward` may be given to check a tape against other expected adjoints; `samples`
    (problem.x and .y as arrays) shares the sums the core report already computed;
    `order` gives the depth of the sums over the samples (the replay runs TensorFlow's
    kernels eagerly, whatever the mode), None the order-free n - 1.
    """
    graph = graph_of(symbolic.model, symbolic.loss_definition)
    backward = backward or derive_adjoints(graph, symbolic)
    n = problem.n
    if samples is None:
        samples = Samples.of_problem(problem)
    fast = None if samples.exact else fast_references(backward, problem, symbolic, samples)
    exact = fast is None
    references = exact_references(backward, problem, symbolic) if fast is None else fast
    trace = _normalised(trace, exact)
    depth = None if order is None else order.depth(n, problem.dtype, kernels=True)
    counts = rounding_counts(backward, n, problem.dtype, depth)
    flush_sensitivities = underflow.sensitivities(symbolic)
    parameters = [problem.initial.values[name] for name in symbolic.parameters]
    names = tuple(symbolic.parameters)
    writer = StepWriter(backward, trace, n, frozenset(names) - worked_in_full(names))
    # Samples whose residual the tape may put on the other side of a kink (|r| at 0)
    near_kinks = KinkWatch(
        symbolic, problem.columns, problem.y, problem.dtype, switches=True
    ).every([Fraction(v) for v in parameters])
    # The forward pass's reach, sample by sample: a non-finite adjoint may come from there
    reach = ForwardReach(symbolic, samples.columns, samples.y, problem.dtype).per_sample(parameters)

    nodes = []
    verdicts: dict[tuple[int, int, sp.Expr], tuple[np.ndarray, Verdicts]] = {}
    for vertex in graph:
        tape_adjoints = trace.adjoints.get(vertex.name)
        expected = check = None
        verified = True
        if vertex.name in backward.adjoints:
            adjoint = backward.adjoints[vertex.name]
            term = writer.latex(adjoint)
            summed = rf"\left({term}\right)" if isinstance(adjoint, sp.Add) else term
            expected = (
                rf"\sum_{{i=1}}^{{n}} {summed}" if vertex.name in backward.broadcast else term
            )
            direct = direct_adjoint(backward, symbolic, vertex.name)
            verified = is_zero(backward.leaf_form(adjoint) - direct)
            reference = references[vertex.name]
            k = counts[vertex.name]
            # A watched node without an adjoint on the tape fails its check (NaN).
            missing = tape_adjoints is None or len(tape_adjoints) == 0
            sensitivity = flush_sensitivities.adjoints[vertex.name]
            # only an adjoint that depends on the side the tape takes
            # (or on the branch SelectV2 takes)
            leaves = backward.leaf_form(adjoint)
            kinks = near_kinks if leaves.has(sp.sign) or leaves.has(sp.Piecewise) else None
            if isinstance(reference, FloatReference):
                tape = np.full(n, math.nan) if missing else tape_adjoints
                # Nodes that pass the same adjoint on have the same verdicts: reuse them.
                key = (id(reference), k, sensitivity.summand)
                if key not in verdicts or not np.array_equal(verdicts[key][0], tape):
                    flushes = underflow.per_sample_bounds(
                        sensitivity, symbolic, parameters, samples.columns, samples.y, problem.dtype
                    )
                    verdicts[key] = (
                        tape,
                        float_verdicts(reference, tape, k, problem.dtype, flushes, reach),
                    )
                check = float_node_check(
                    vertex, reference, tape, k, problem.dtype, verdicts[key][1], kinks, reach
                )
            else:
                tape = (math.nan,) * len(reference.values) if missing else tape_adjoints
                flushes = _exact_flushes(sensitivity, problem, symbolic, len(reference.values))
                check = node_check(vertex, reference, tape, k, problem.dtype, flushes, kinks, reach)
        op, tf_op = (
            _LEAF_OPS[vertex.kind] if vertex.op is None else (vertex.op.name, vertex.op.tf_type)
        )
        nodes.append(
            NodeFacts(
                name=vertex.name,
                kind=vertex.kind,
                op=op,
                tf_op=tf_op,
                inputs=vertex.inputs,
                symbol=vertex.symbol,
                label=vertex.label,
                definition=writer.definition(vertex),
                per_sample=vertex.per_sample,
                values=trace.values[vertex.name],
                adjoints=tape_adjoints,
                expected=expected,
                expected_verified=verified,
                check=check,
                flag=vertex.op is not None and not vertex.op.differentiable,
            )
        )

    steps = tuple(
        BackwardStep(
            node=consumer.name,
            op=consumer.op.name,
            tf_op=consumer.op.tf_type,
            rule=consumer.op.rule,
            propagations=tuple(writer.propagation(consumer, name) for name in consumer.inputs),
        )
        for consumer in reversed(op_vertices(graph))
        if consumer.op is not None and consumer.watched  # the tape runs no gradient for
    )  # a node computed from the data alone

    sums = []  # in the order the tape reaches them: last op first
    for consumer in reversed(op_vertices(graph)):
        for name in consumer.inputs:
            if name not in backward.broadcast:
                continue
            sums.append(
                _broadcast_sum(symbolic, writer, backward, consumer, name, formulas[name], n)
            )

    replayed = tuple(t for v in op_vertices(graph) if v.op is not None for t in v.op.recorded)
    output = graph[-1].name
    replay_matches = _same(_first(trace.values[output]), script.loss) and all(
        _same(_first(trace.adjoints.get(name)), value) for name, value in script.gradients.items()
    )
    rows, elided = table_rows(n)
    return BackwardFacts(
        n=n,
        dtype=problem.dtype,
        nodes=tuple(nodes),
        steps=steps,
        sums=tuple(sums),
        rows=rows,
        elided=elided,
        recorded_ops=tuple(trace.recorded_ops),
        replayed_ops=replayed,
        ops_match=tuple(trace.recorded_ops) == replayed,
        matches_definition=matches_definition(backward, symbolic),
        replay_matches=replay_matches,
        replay_under_xla=problem.mode == "xla",
        reference_method=_method(
            problem.dtype, exact, [v.name for v in graph if v.name in backward.broadcast]
        ),
        exact=exact,
    )


def _exact_flushes(
    sensitivity: underflow.Sensitivity, problem: Problem, symbolic: Symbolic, count: int
) -> list[Fraction]:
    """S for each of a node's `count` reference values, exactly: the total for a scalar
    every sample uses, else one per sample (a scalar: at the first sample)."""
    if sensitivity.summed:
        return [underflow.at_initial_values(problem, symbolic, sensitivity)]
    parameters = [Fraction(problem.initial.values[name]) for name in symbolic.parameters]
    columns = [problem.exact(c[:count]) for c in problem.columns]
    rows = list(zip(*columns, strict=True))
    ys = problem.exact(problem.y[:count])
    return underflow.per_sample_exact(sensitivity, symbolic, parameters, rows, ys, problem.dtype)


def _method(dtype: str, exact: bool, sums: Sequence[str]) -> Message:
    """How the references were computed, as a message for the report."""
    if exact:
        return Message.of("method.backward", dtype=dtype)
    allowance = int(math.log2(FLOAT_ALLOWANCE.denominator))
    return Message.of(
        "method.backward_error_free", dtype=dtype, allowance=allowance, sums=", ".join(sums)
    )


def _same(replayed: float | None, scripted: float) -> bool:
    """The same number, a NaN included (NaN == NaN is false)."""
    if replayed is None:
        return False
    return replayed == scripted or (math.isnan(replayed) and math.isnan(scripted))


def _first(values: Values | None) -> float | None:
    return None if values is None or len(values) == 0 else float(values[0])


def _as_values(values: Sequence[float] | np.ndarray, exact: bool) -> Values:
    """A tuple of floats on the exact path (as before); else a read-only float64 array."""
    if exact:
        return tuple(values.tolist()) if isinstance(values, np.ndarray) else tuple(values)
    array = np.asarray(values, dtype=np.float64).view()  # a view: the caller's array stays as is
    array.setflags(write=False)
    return array


def _normalised(trace: BackwardTrace, exact: bool) -> BackwardTrace:
    return dataclasses.replace(
        trace,
        values={name: _as_values(v, exact) for name, v in trace.values.items()},
        adjoints={
            name: None if v is None else _as_values(v, exact) for name, v in trace.adjoints.items()
        },
    )


def _broadcast_sum(
    symbolic: Symbolic,
    writer: StepWriter,
    backward: SymbolicBackward,
    consumer: Vertex,
    name: str,
    formula: Formula,
    n: int,
) -> BroadcastSum:
    symbol = writer.vertices[name].symbol
    local = backward.locals[(consumer.name, name)]
    term = backward.adjoints[name]
    via = partial_of(consumer.symbol)
    step = via if local == 1 else rf"{writer.latex(local)} \cdot {via}"

    def bracketed(text: str) -> str:  # a sum as one term of a sum
        return rf"\left({text}\right)" if isinstance(term, sp.Add) else text

    # Each term with its chain-rule factor, n written as the number: 2 r_1 / 2. Long
    # terms (Huber's two branches) show the first and the last only, to fit the page.
    shown = _shown_terms(n, 2 if len(writer.latex(term)) > 40 else 4)
    parts = [r"\cdots" if k is None else bracketed(writer.latex(term, k, str(n))) for k in shown]
    total = writer.adjoint(name, 1)
    meets = is_zero(backward.leaf_form(term) - formula.coefficient * formula.summand)
    return BroadcastSum(
        parameter=name,
        via=consumer.name,
        general=(
            f"{partial_of(symbol)} = \\sum_{{i=1}}^{{n}} {step} = "
            f"\\sum_{{i=1}}^{{n}} {bracketed(writer.latex(term))}"
        ),
        written_out=f"{partial_of(symbol)} = " + " + ".join(parts),
        with_numbers=writer.sum_lines(consumer, name, "="),
        terms=n,
        total=total,
        derivation=shown_latex(symbolic, formula.expression),
        meets_derivation=meets,
        in_full=name in worked_in_full(tuple(symbolic.parameters)),
    )


def explain_backward(
    problem: Problem,
    symbolic: Symbolic,
    formulas: Mapping[str, Formula],
    script: TapeResult,
    samples: Samples | None = None,
    trace: BackwardTrace | None = None,
    order: Order | None = None,
) -> BackwardFacts:
    """The facts of the backward section; `trace` is the tape's node-by-node replay
    when it ran elsewhere (the training process), else it runs here, with TensorFlow.
    `order`: how the tape's kernels add up (None: not known, the order-free n - 1)."""
    if trace is None:
        from ..tape.backward import backward_at

        trace = backward_at(problem, graph_nodes(symbolic))
    return build_backward(problem, symbolic, formulas, trace, script, samples=samples, order=order)


def graph_nodes(symbolic: Symbolic) -> tuple[Node, ...]:
    """The ops of the model and the loss, in the order the script runs them."""
    return (*symbolic.model.graph, *symbolic.loss_definition.graph)


def stand_in_backward(problem: Problem, symbolic: Symbolic) -> BackwardTrace:
    """The node-by-node replay computed with NumPy in the problem's dtype, for the draft
    report (:func:`derive.report.build.draft`) that renders the formulas while TensorFlow
    trains. Each forward op rounds once, as on the tape, so most of the numbers the
    section shows come out the same and their formulas are rendered ahead of time. The
    report itself always uses the tape's replay."""
    from ..tape.backward import BackwardTrace

    graph = graph_of(symbolic.model, symbolic.loss_definition)
    backward = derive_adjoints(graph, symbolic)
    dtype = np.dtype(problem.dtype).type
    columns = [np.asarray(c, dtype=dtype) for c in problem.columns]
    y = np.asarray(problem.y, dtype=dtype)
    parameters = [dtype(problem.initial.values[name]) for name in symbolic.parameters]
    leaves = {
        **dict(zip(symbolic.parameters, parameters, strict=True)),
        **{name: dtype(value) for name, value in problem.loss_entry.constants},
        **dict(zip(symbolic.model.data, columns, strict=True)),
        "y": y,
    }
    # The tape overflows where the data are too large for the dtype; so does this
    # replay, silently, as the tape does (the report says so; NumPy need not).
    with np.errstate(over="ignore", invalid="ignore"):
        values: dict[str, np.ndarray] = {}
        for vertex in graph:
            if vertex.op is None:
                values[vertex.name] = np.atleast_1d(leaves[vertex.name])
            elif vertex.op.reduces:
                values[vertex.name] = np.atleast_1d(np.mean(values[vertex.inputs[0]], dtype=dtype))
            else:
                values[vertex.name] = np.atleast_1d(
                    vertex.op.forward(*(values[name] for name in vertex.inputs))
                )
        arguments = [*symbolic.parameters.values(), *symbolic.features, Y_I]
        adjoints: dict[str, np.ndarray | None] = dict.fromkeys(values)
        for vertex in graph:
            if vertex.name not in backward.adjoints:
                continue
            term = backward.leaf_form(backward.adjoints[vertex.name]).subs(N, problem.n)
            function = sp.lambdify(arguments, term, "numpy")
            each = np.broadcast_to(
                np.asarray(function(*parameters, *columns, y), dtype=dtype), y.shape
            )
            if vertex.name in backward.broadcast:
                adjoints[vertex.name] = np.atleast_1d(np.sum(each, dtype=dtype))
            else:
                adjoints[vertex.name] = each if vertex.per_sample else each[:1]
    recorded = tuple(t for v in op_vertices(graph) if v.op is not None for t in v.op.recorded)
    return BackwardTrace(values=values, adjoints=adjoints, recorded_ops=recorded)
