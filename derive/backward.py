"""The tape's own calculation as report facts: the backward pass node by node.

TensorFlow's adjoints (:func:`derive.tape.backward_at`) are set against the symbolic
ones of :mod:`derive.adjoints`, evaluated exactly, with a tolerance gamma_k * M from
the rounding-error bound of the float computation. The facts also carry the LaTeX the
report shows: each op's local rule, with the tape's numbers put in, and the sums over
the samples that make the gradients of W and b.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sympy as sp

from .adjoints import (
    Reference,
    SymbolicBackward,
    Vertex,
    derive_adjoints,
    direct_adjoint,
    exact_references,
    graph_of,
    is_zero,
    matches_definition,
    op_vertices,
    rounding_counts,
)
from .check import Check, compare, gamma_bound
from .i18n import Message
from .numbers import latex_number
from .symbolic import Formula, N, ReportLatexPrinter, Symbolic
from .symbolic import shown_terms as _shown_terms

if TYPE_CHECKING:
    from .problem import Problem
    from .tape import BackwardTrace, TapeResult

MAX_TABLE_ROWS = 20  # as in the per-sample table: beyond this, tables show their ends only
EDGE_ROWS = 5
SHOWN_WORKED = 3  # samples worked out with numbers before the middle is elided
SHOWN_CHECKS = 3  # per-sample checks listed one by one; beyond, the worst one


@dataclass(frozen=True)
class ShownCheck:
    label: str | Message  # "1", "2", or "7 (worst of 17)" as a Message; "" for a scalar
    check: Check


@dataclass(frozen=True)
class NodeCheck:
    """The tape's adjoint at one node against the exact reference, sample by sample."""

    checks: tuple[Check, ...]  # one per sample, or one for a scalar
    roundings: int  # k of the bound gamma_k * M
    shown: tuple[ShownCheck, ...]  # what the report lists

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


@dataclass(frozen=True)
class NodeFacts:
    """One node: what it is, its value and adjoint on the tape, and the expected adjoint."""

    name: str
    kind: str  # "parameter", "data", "op"
    op: str  # "variable", "constant", or the op's name
    tf_op: str  # what TensorFlow records: tf.Variable, tf.constant, Mul, ...
    inputs: tuple[str, ...]
    symbol: str  # LaTeX, with the index i for per-sample nodes
    label: str  # plain text
    definition: str  # LaTeX: symbol = op(inputs)
    per_sample: bool
    values: tuple[float, ...]  # the tape's values
    adjoints: tuple[float, ...] | None  # the tape's adjoints; None: not watched
    expected: str | None  # LaTeX of dL/d(node) by the chain rule
    expected_verified: bool  # equals differentiating L directly (SymPy)
    check: NodeCheck | None

    @property
    def ok(self) -> bool:
        return self.check is None or (self.check.ok and self.expected_verified)


@dataclass(frozen=True)
class Propagation:
    """What one op's backward function sends to one of its inputs."""

    target: str
    watched: bool
    broadcast: bool  # a scalar used by every sample: the adjoints are summed
    rule: str  # LaTeX, general i
    lines: tuple[str | None, ...]  # LaTeX with the tape's numbers, per shown sample; None: elided


@dataclass(frozen=True)
class BackwardStep:
    """One op's backward function, in the order the tape runs them."""

    node: str
    op: str
    tf_op: str
    rule: str  # the op's local rule in words (English; the catalogue has op_rule.<op>)
    propagations: tuple[Propagation, ...]


@dataclass(frozen=True)
class BroadcastSum:
    """A scalar parameter's gradient as the sum of the adjoints that reach it."""

    parameter: str
    via: str  # the node whose adjoints are summed
    general: str  # LaTeX: dL/db = sum_i dL/dy_hat_i = sum_i 2 r_i / n
    written_out: str  # the same for this n, with each term's chain-rule factor
    with_numbers: tuple[str, ...]  # the tape's adjoints put in, and its gradient (in lines)
    terms: int
    total: float  # the tape's gradient
    derivation: str  # LaTeX of the core derivation's formula
    meets_derivation: bool  # SymPy: the sum equals that formula, term by term


@dataclass(frozen=True)
class BackwardFacts:
    n: int
    dtype: str
    nodes: tuple[NodeFacts, ...]  # leaves, then ops in forward order
    steps: tuple[BackwardStep, ...]  # the ops' backward functions, last op first
    sums: tuple[BroadcastSum, ...]
    rows: tuple[int | None, ...]  # sample indices (0-based) shown in tables; None: elided
    elided: int
    recorded_ops: tuple[str, ...]  # what TensorFlow records for the script's own expressions
    replayed_ops: tuple[str, ...]  # the ops of the node list
    ops_match: bool
    matches_definition: bool  # the nodes compose to the model's and loss's formulas
    replay_matches: bool  # same loss and gradients as tape.gradient(loss, [W, b])
    reference_method: Message

    @property
    def ok(self) -> bool:
        return (
            all(node.ok for node in self.nodes)
            and all(s.meets_derivation for s in self.sums)
            and self.ops_match
            and self.matches_definition
            and self.replay_matches
        )

    @property
    def failures(self) -> tuple[Message, ...]:
        """What disagrees, one short sentence each (empty when everything agrees);
        ``str()`` gives the English sentence."""
        found = []
        for node in self.nodes:
            if node.check is None:
                continue
            if not node.expected_verified:
                found.append(Message.of("failure.not_partial", label=node.label))
            failed = sum(not check.ok for check in node.check.checks)
            if failed:
                found.append(
                    Message.of(
                        "failure.beyond_bound_samples",
                        label=node.label,
                        failed=failed,
                        total=len(node.check.checks),
                    )
                    if node.per_sample
                    else Message.of("failure.beyond_bound", label=node.label)
                )
        found += [
            Message.of("failure.sum_differs", parameter=s.parameter)
            for s in self.sums
            if not s.meets_derivation
        ]
        if not self.ops_match:
            found.append(Message.of("failure.ops_differ"))
        if not self.matches_definition:
            found.append(Message.of("failure.not_composed"))
        if not self.replay_matches:
            found.append(Message.of("failure.replay_differs"))
        return tuple(found)

    def node(self, name: str) -> NodeFacts:
        return next(node for node in self.nodes if node.name == name)

    @property
    def checked(self) -> tuple[NodeFacts, ...]:
        """The nodes with an adjoint check, in forward order."""
        return tuple(node for node in self.nodes if node.check is not None)

    @property
    def per_sample_nodes(self) -> tuple[NodeFacts, ...]:
        return tuple(node for node in self.nodes if node.kind == "op" and node.per_sample)


class _Printer(ReportLatexPrinter):
    """LaTeX with node symbols printed by their names, or as numbers."""

    def __init__(
        self, names: Mapping[sp.Basic, str], numbers: Mapping[sp.Basic, float] | None = None
    ) -> None:
        super().__init__({"mul_symbol": "dot" if numbers else None})
        self.names = names
        self.numbers = numbers or {}

    def _leaf(self, expr: sp.Basic) -> str | None:
        if expr in self.numbers:
            return _signed(self.numbers[expr])
        return self.names.get(expr)

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        return self._leaf(expr) or super()._print_Symbol(expr, style)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        return self._leaf(expr) or super()._print_Indexed(expr)


def _signed(value: float) -> str:
    text = latex_number(value)
    return rf"\left({text}\right)" if value < 0 else text


def _at(symbol: str, k: int | str) -> str:
    return symbol.replace("_{i}", f"_{{{k}}}")


def _partial(symbol: str) -> str:
    return rf"\frac{{\partial L}}{{\partial {symbol}}}"


def _shown(n: int) -> list[int | None]:
    return _shown_terms(n, SHOWN_WORKED)


class _Writer:
    """Builds the LaTeX of the report's backward section from the graph and the tape."""

    def __init__(self, backward: SymbolicBackward, trace: BackwardTrace, n: int) -> None:
        self.backward = backward
        self.trace = trace
        self.n = n
        self.vertices = {v.name: v for v in backward.graph}

    def names(self, k: int | str = "i", n: str = "n") -> dict[sp.Basic, str]:
        names: dict[sp.Basic, str] = {N: n}
        for vertex in self.backward.graph:
            names[self.backward.symbols[vertex.name]] = _at(vertex.symbol, k)
        return names

    def latex(self, expr: sp.Expr, k: int | str = "i", n: str = "n") -> str:
        return _Printer(self.names(k, n)).doprint(expr)

    def numbers(self, k: int) -> dict[sp.Basic, float]:
        numbers: dict[sp.Basic, float] = {N: float(self.n)}
        for vertex in self.backward.graph:
            values = self.trace.values[vertex.name]
            numbers[self.backward.symbols[vertex.name]] = values[k - 1 if len(values) > 1 else 0]
        return numbers

    def with_numbers(self, expr: sp.Expr, k: int) -> str:
        return _Printer(self.names(k), self.numbers(k)).doprint(expr)

    def definition(self, vertex: Vertex) -> str:
        if vertex.op is None:
            return vertex.symbol
        operands = [self.vertices[name].symbol for name in vertex.inputs]
        return f"{vertex.symbol} = " + vertex.op.notation.format(*operands)

    def adjoint(self, name: str, k: int) -> float:
        values = self.trace.adjoints[name] or ()
        return values[k - 1 if len(values) > 1 else 0]

    def sum_lines(self, consumer: Vertex, name: str, lhs: str) -> tuple[str, ...]:
        """lhs term_1 + term_2 + ... + term_n = total, with the tape's numbers.

        Long sums are broken after every few terms, so that no line is wider than the page.
        """
        local = self.backward.locals[(consumer.name, name)]
        parts = []
        for k in _shown_terms(self.n, 4):
            if k is None:
                parts.append(r"\cdots")
                continue
            adjoint = _signed(self.adjoint(consumer.name, k))
            factor = self.with_numbers(local, k)
            parts.append(adjoint if local == 1 else rf"{factor} \cdot {adjoint}")
        total = f"= {latex_number(self.adjoint(name, 1))}"
        if len(parts) == 1 and local == 1:  # one sample passed through: just the number
            return (f"{lhs} {latex_number(self.adjoint(name, 1))}",)
        per_line = 3 if local == 1 else 2
        if len(parts) <= per_line:
            return (f"{lhs} {' + '.join(parts)} {total}",)
        chunks = [parts[i : i + per_line] for i in range(0, len(parts), per_line)]
        return (
            f"{lhs} {' + '.join(chunks[0])}",
            *(rf"\qquad + {' + '.join(chunk)}" for chunk in chunks[1:]),
            rf"\qquad {total}",
        )

    def propagation(self, consumer: Vertex, name: str) -> Propagation:
        target = self.vertices[name]
        if not target.watched:
            return Propagation(name, False, False, "", ())
        local = self.backward.locals[(consumer.name, name)]
        broadcast = name in self.backward.broadcast
        upstream = _partial(consumer.symbol)

        def product(local_text: str, upstream_text: str) -> str:
            if local == 1:
                return upstream_text
            if local == -1:
                return "-" + upstream_text
            return rf"{local_text} \cdot {upstream_text}"

        if broadcast:
            rule = f"{_partial(target.symbol)} = \\sum_{{i=1}}^{{n}} " + product(
                self.latex(local), upstream
            )
            lines = self.sum_lines(consumer, name, f"{_partial(target.symbol)} =")
            return Propagation(name, True, True, rule, lines)
        rule = f"{_partial(target.symbol)} = " + product(self.latex(local), upstream)
        if not target.per_sample and not consumer.per_sample:
            ks: list[int | None] = [1]
        else:
            ks = _shown(self.n)

        def line(k: int) -> str:
            # A pass-through names the upstream adjoint instead of repeating its number.
            upstream_k = _partial(_at(consumer.symbol, k))
            middle = (
                product("", upstream_k)
                if local in (1, -1)
                else product(self.with_numbers(local, k), _signed(self.adjoint(consumer.name, k)))
            )
            return (
                f"{_partial(_at(target.symbol, k))} = {middle}"
                f" = {latex_number(self.adjoint(name, k))}"
            )

        lines = tuple(None if k is None else line(k) for k in ks)
        return Propagation(name, True, False, rule, lines)


def _node_check(
    vertex: Vertex,
    reference: Reference,
    tape: Sequence[float],
    k: int,
    dtype: str,
) -> NodeCheck:
    checks = []
    for index, (exact, magnitude, value) in enumerate(
        zip(reference.values, reference.magnitudes, tape, strict=True), start=1
    ):
        quantity = f"dL/d{vertex.label}" + (f" (i = {index})" if len(tape) > 1 else "")
        checks.append(compare(quantity, exact, value, gamma_bound(k, dtype, magnitude), dtype))
    if len(checks) == 1:
        shown = (ShownCheck("", checks[0]),)
    elif len(checks) <= SHOWN_CHECKS:
        shown = tuple(ShownCheck(str(i), c) for i, c in enumerate(checks, start=1))
    else:

        def badness(check: Check) -> float:
            if check.tolerance > 0:
                return check.abs_error / check.tolerance
            return 0.0 if check.abs_error == 0 else float("inf")

        worst = max(range(len(checks)), key=lambda i: badness(checks[i]))
        shown = (
            ShownCheck(Message.of("backward.worst_of", i=worst + 1, n=len(checks)), checks[worst]),
        )
    return NodeCheck(tuple(checks), k, shown)


def _rows(n: int) -> tuple[tuple[int | None, ...], int]:
    if n <= MAX_TABLE_ROWS:
        return tuple(range(n)), 0
    return (*range(EDGE_ROWS), None, *range(n - EDGE_ROWS, n)), n - 2 * EDGE_ROWS


_LEAF_OPS = {"parameter": ("variable", "tf.Variable"), "data": ("constant", "tf.constant")}


def build_backward(
    problem: Problem,
    symbolic: Symbolic,
    formulas: Mapping[str, Formula],
    trace: BackwardTrace,
    script: TapeResult,
    backward: SymbolicBackward | None = None,
) -> BackwardFacts:
    """The facts of the backward section from the tape's trace and the symbolic adjoints.

    `formulas` are the core report's derivatives (deliberately wrong ones included);
    `backward` may be given to check a tape against other expected adjoints.
    """
    graph = graph_of(symbolic.model, symbolic.loss_definition)
    backward = backward or derive_adjoints(graph, symbolic)
    n = problem.n
    references = exact_references(backward, problem, symbolic)
    counts = rounding_counts(backward, n, problem.dtype)
    writer = _Writer(backward, trace, n)

    nodes = []
    for vertex in graph:
        tape_adjoints = trace.adjoints.get(vertex.name)
        expected = check = None
        verified = True
        if vertex.name in backward.adjoints:
            adjoint = backward.adjoints[vertex.name]
            term = writer.latex(adjoint)
            expected = rf"\sum_{{i=1}}^{{n}} {term}" if vertex.name in backward.broadcast else term
            direct = direct_adjoint(backward, symbolic, vertex.name)
            verified = is_zero(backward.leaf_form(adjoint) - direct)
            reference = references[vertex.name]
            # A watched node without an adjoint on the tape fails its check (NaN).
            tape = tape_adjoints or (math.nan,) * len(reference.values)
            check = _node_check(vertex, reference, tape, counts[vertex.name], problem.dtype)
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
                values=tuple(trace.values[vertex.name]),
                adjoints=None if tape_adjoints is None else tuple(tape_adjoints),
                expected=expected,
                expected_verified=verified,
                check=check,
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
        if consumer.op is not None
    )

    sums = []  # in the order the tape reaches them: last op first
    for consumer in reversed(op_vertices(graph)):
        for name in consumer.inputs:
            if name not in backward.broadcast:
                continue
            sums.append(_broadcast_sum(writer, backward, consumer, name, formulas[name], n))

    replayed = tuple(v.op.tf_type for v in op_vertices(graph) if v.op is not None)
    output = graph[-1].name
    replay_matches = trace.values[output][0] == script.loss and all(
        (trace.adjoints.get(name) or (None,))[0] == value
        for name, value in script.gradients.items()
    )
    rows, elided = _rows(n)
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
        reference_method=Message.of("method.backward", dtype=problem.dtype),
    )


def _broadcast_sum(
    writer: _Writer,
    backward: SymbolicBackward,
    consumer: Vertex,
    name: str,
    formula: Formula,
    n: int,
) -> BroadcastSum:
    symbol = writer.vertices[name].symbol
    local = backward.locals[(consumer.name, name)]
    term = backward.adjoints[name]
    via = _partial(consumer.symbol)
    step = via if local == 1 else rf"{writer.latex(local)} \cdot {via}"
    # Each term with its chain-rule factor, n written as the number: 2 r_1 / 2.
    parts = [r"\cdots" if k is None else writer.latex(term, k, str(n)) for k in _shown_terms(n, 4)]
    total = writer.adjoint(name, 1)
    meets = is_zero(backward.leaf_form(term) - formula.coefficient * formula.summand)
    return BroadcastSum(
        parameter=name,
        via=consumer.name,
        general=(
            f"{_partial(symbol)} = \\sum_{{i=1}}^{{n}} {step} = "
            f"\\sum_{{i=1}}^{{n}} {writer.latex(term)}"
        ),
        written_out=f"{_partial(symbol)} = " + " + ".join(parts),
        with_numbers=writer.sum_lines(consumer, name, "="),
        terms=n,
        total=total,
        derivation=formula.latex,
        meets_derivation=meets,
    )


def explain_backward(
    problem: Problem,
    symbolic: Symbolic,
    formulas: Mapping[str, Formula],
    script: TapeResult,
) -> BackwardFacts:
    """Run the tape node by node and build the facts (TensorFlow is imported here)."""
    from .tape import backward_at

    nodes = (*symbolic.model.graph, *symbolic.loss_definition.graph)
    return build_backward(problem, symbolic, formulas, backward_at(problem, nodes), script)
