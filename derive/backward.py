"""The tape's own calculation as report facts: the backward pass node by node.

TensorFlow's adjoints (:func:`derive.tape.backward_at`) are set against the symbolic
ones of :mod:`derive.adjoints`, evaluated exactly, with a tolerance gamma_k * M from
the rounding-error bound of the float computation. The facts also carry the LaTeX the
report shows: each op's local rule, with the tape's numbers put in, and the sums over
the samples that make the gradients of W and b.

Beyond ``reference.EXACT_LIMIT`` samples the references are float64 pairs with a
stated error (:func:`derive.adjoints.fast_references`) and every sample is checked at
once with NumPy; :class:`Check` objects (exact differences) are built for every sample up
to LISTED_LIMIT samples, beyond that only for those the report shows (the table rows
and the worst sample of each node).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from . import underflow
from .adjoints import (
    DATA,
    FLOAT_ALLOWANCE,
    FloatReference,
    Reference,
    SymbolicBackward,
    Vertex,
    derive_adjoints,
    direct_adjoint,
    exact_references,
    fast_references,
    graph_of,
    is_zero,
    matches_definition,
    op_vertices,
    rounding_counts,
)
from .check import (
    INCONCLUSIVE,
    OVERFLOW,
    Check,
    bound_at,
    compare,
    gamma_bound,
    gamma_bounds,
    has_bound,
    overflow_threshold,
)
from .expansion import two_sum
from .i18n import Message
from .numbers import latex_number
from .reference import Samples
from .symbolic import Formula, N, ReportLatexPrinter, Symbolic
from .symbolic import shown_terms as _shown_terms

if TYPE_CHECKING:
    from .ops import Node
    from .problem import Problem
    from .roundings import Order
    from .tape import BackwardTrace, TapeResult

MAX_TABLE_ROWS = 20  # as in the per-sample table: beyond this, tables show their ends only
EDGE_ROWS = 5
SHOWN_WORKED = 3  # samples worked out with numbers before the middle is elided
SHOWN_CHECKS = 3  # per-sample checks listed one by one; beyond, the worst one
# Up to this many samples every per-sample check is kept (and written to JSON); beyond,
# only those of the table rows and the worst one per node, with counts of the rest.
LISTED_LIMIT = 10_000

Values = tuple[float, ...] | np.ndarray  # a tuple on the exact path, else float64 (read-only)


@dataclass(frozen=True)
class ShownCheck:
    label: str | Message  # "1", "2", or "7 (worst of 17)" as a Message; "" for a scalar
    check: Check


@dataclass(frozen=True)
class NodeCheck:
    """The tape's adjoint at one node against the reference, sample by sample.

    Every sample is checked and counted; `checks` holds one per sample up to
    LISTED_LIMIT samples (one for a scalar), beyond that those of the table rows and
    the worst sample, at the 0-based sample indices `indices`.
    """

    checks: tuple[Check, ...]
    roundings: int  # k of the bound gamma_k * M
    shown: tuple[ShownCheck, ...]  # what the report lists
    indices: tuple[int, ...]  # the sample of each entry of `checks`
    samples: int  # how many values were checked
    failed: int  # how many of them are beyond their bound (overflows included)
    inconclusive: int = 0  # within their bound, which is at least half the value
    overflowed: int = 0  # non-finite where a correct tape may leave the dtype's range

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def complete(self) -> bool:
        """`checks` holds every sample's check."""
        return len(self.checks) == self.samples


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
    values: Values  # the tape's values
    adjoints: Values | None  # the tape's adjoints; None: not watched
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
    exact: bool = True  # exact rational references; else float64 with a stated error
    # The script's tape ran under XLA: the replay (TensorFlow's own kernels, eagerly)
    # need not give its bits, as XLA fuses and reorders; section 6 checks the script's.
    replay_under_xla: bool = False

    @property
    def replay_expected(self) -> bool:
        """The replay must give the script's loss and gradients bit for bit."""
        return not self.replay_under_xla

    @property
    def ok(self) -> bool:
        return (
            all(node.ok for node in self.nodes)
            and all(s.meets_derivation for s in self.sums)
            and self.ops_match
            and self.matches_definition
            and (self.replay_matches or not self.replay_expected)
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
            overflowed = node.check.overflowed
            if overflowed:
                found.append(
                    Message.of(
                        "failure.overflow", label=node.label, count=overflowed, dtype=self.dtype
                    )
                )
            failed = node.check.failed - overflowed
            if failed:
                found.append(
                    Message.of(
                        "failure.beyond_bound_samples",
                        label=node.label,
                        failed=failed,
                        total=node.check.samples,
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
        if not self.replay_matches and self.replay_expected:
            found.append(Message.of("failure.replay_differs"))
        return tuple(found)

    @property
    def only_overflowed(self) -> bool:
        """Not ok only because adjoints left the dtype's range where a correct tape may."""
        return (
            all(
                node.check is None
                or (node.check.failed == node.check.overflowed and node.expected_verified)
                for node in self.nodes
            )
            and all(s.meets_derivation for s in self.sums)
            and self.ops_match
            and self.matches_definition
            and (self.replay_matches or not self.replay_expected)
        )

    @property
    def inconclusive(self) -> int:
        """Adjoints within their bound where the bound is at least half the value."""
        return sum(node.check.inconclusive for node in self.checked if node.check)

    @property
    def overflowed(self) -> int:
        """Adjoints that left the dtype's range where a correct tape may."""
        return sum(node.check.overflowed for node in self.checked if node.check)

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
            value = values[k - 1 if len(values) > 1 else 0]
            numbers[self.backward.symbols[vertex.name]] = float(value)
        return numbers

    def with_numbers(self, expr: sp.Expr, k: int) -> str:
        return _Printer(self.names(k), self.numbers(k)).doprint(expr)

    def definition(self, vertex: Vertex) -> str:
        if vertex.op is None:
            return vertex.symbol
        operands = [self.vertices[name].symbol for name in vertex.inputs]
        return f"{vertex.symbol} = " + vertex.op.notation.format(*operands)

    def adjoint(self, name: str, k: int) -> float:
        values = self.trace.adjoints[name]
        values = () if values is None else values
        return float(values[k - 1 if len(values) > 1 else 0])

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


def _quantity(vertex: Vertex, index: int, many: bool) -> str:
    return f"dL/d{vertex.label}" + (f" (i = {index + 1})" if many else "")


def _kept(n: int, worst: int) -> tuple[int, ...]:
    """The samples whose checks are kept: all up to LISTED_LIMIT, else the rows and the worst."""
    if n <= LISTED_LIMIT:
        return tuple(range(n))
    rows = {k for k in _rows(n)[0] if k is not None}
    return tuple(sorted(rows | {worst}))


def _shown_checks(checks: Mapping[int, Check], n: int, worst: int) -> tuple[ShownCheck, ...]:
    if n == 1:
        return (ShownCheck("", checks[0]),)
    if n <= SHOWN_CHECKS:
        return tuple(ShownCheck(str(i + 1), checks[i]) for i in range(n))
    return (ShownCheck(Message.of("backward.worst_of", i=worst + 1, n=n), checks[worst]),)


def _node_check(
    vertex: Vertex,
    reference: Reference,
    tape: Sequence[float],
    k: int,
    dtype: str,
    flushes: Sequence[Fraction],
) -> NodeCheck:
    """Every sample's Check, with exact differences (the exact path, and scalars).

    `flushes`: the sensitivity S to numbers flushed to zero, for each value.
    """
    checks = [
        compare(
            _quantity(vertex, index, len(tape) > 1),
            exact,
            float(value),
            gamma_bound(k, dtype, magnitude, sensitivity, reference.allowance),
            dtype,
        )
        for index, (exact, magnitude, sensitivity, value) in enumerate(
            zip(reference.values, reference.magnitudes, flushes, tape, strict=True)
        )
    ]

    def badness(check: Check) -> float:
        if check.tolerance > 0:
            return check.abs_error / check.tolerance
        return 0.0 if check.abs_error == 0 else float("inf")

    n = len(checks)
    worst = max(range(n), key=lambda i: badness(checks[i])) if n > SHOWN_CHECKS else 0
    kept = _kept(n, worst)
    failed = sum(not check.ok for check in checks)
    shown = _shown_checks(dict(enumerate(checks)), n, worst)
    return NodeCheck(
        tuple(checks[i] for i in kept),
        k,
        shown,
        kept,
        n,
        failed,
        inconclusive=sum(check.verdict == INCONCLUSIVE for check in checks),
        overflowed=sum(check.verdict == OVERFLOW for check in checks),
    )


@dataclass(frozen=True)
class _Verdicts:
    """Every sample's verdict against a FloatReference, from NumPy."""

    tolerances: np.ndarray  # (gamma_k + allowance) * M_i + (1 + gamma_k) lambda S_i, rounded up
    flushes: np.ndarray  # S_i (upper bounds)
    ok: np.ndarray
    worst: int  # the sample closest to (or furthest beyond) its tolerance
    inconclusive: int = 0  # ok samples whose tolerance is at least half the reference
    overflowed: int = 0  # non-finite samples a correct tape may overflow at
    # Checks already made, by sample: nodes that pass one adjoint on share them.
    made: dict[int, Check] = dataclasses.field(default_factory=dict, compare=False)


def _float_verdicts(
    reference: FloatReference, tape: np.ndarray, k: int, dtype: str, flushes: np.ndarray
) -> _Verdicts:
    """The tape against the reference at every sample, at once.

    The difference tape_i - (high_i + low_i) is computed with TwoSum and two roundings,
    so it is known to within `slack`; a sample whose difference lies within `slack` of
    its tolerance is settled exactly, in rational arithmetic.
    """
    n = tape.size
    tolerances = gamma_bounds(k, dtype, reference.magnitudes, flushes, reference.allowance)
    tolerances = np.broadcast_to(tolerances, (n,))
    finite = np.isfinite(tape)
    # k u >= 1: no bound exists, so nothing passes. A tolerance beyond float64's range
    # with a gamma_k is still a bound (M is huge), and everything finite is within it.
    bounded = has_bound(k, dtype)
    unbounded = np.isinf(tolerances) & bounded
    with np.errstate(invalid="ignore", over="ignore"):
        first, second = two_sum(tape, -reference.high)  # tape - high, exactly
        rest = second - reference.low
        differences = np.abs(first + rest)
        slack = 2.0**-51 * (differences + np.abs(rest)) + 2.0**-1074
    ok = bounded & finite & (unbounded | (differences + slack < tolerances))
    unsettled = bounded & finite & ~unbounded & ~ok & (differences - slack <= tolerances)
    for i in np.flatnonzero(unsettled):
        exact = abs(Fraction(float(tape[i])) - reference.at(int(i)))
        ok[i] = exact <= Fraction(float(tolerances[i]))
    worst = 0
    if n > SHOWN_CHECKS:
        with np.errstate(divide="ignore", invalid="ignore"):
            badness = np.where(
                tolerances > 0,
                differences / tolerances,
                np.where(differences == 0, 0.0, math.inf),
            )
        badness[~finite] = math.inf
        worst = int(np.argmax(badness))
    # Inconclusive: ok, with 2 tolerance >= |reference|; high + low is within 2^-94 M of
    # the reference, so a comparison within 2^-50 of equality is settled exactly.
    with np.errstate(invalid="ignore", over="ignore"):
        size = np.abs(reference.high + reference.low)
        loose = ok & (2 * tolerances >= size * (1 + 2.0**-50))
        near = ok & ~loose & (2 * tolerances >= size * (1 - 2.0**-50))
        reach = np.abs(reference.high) + tolerances
    inconclusive = int(np.count_nonzero(loose))
    for i in np.flatnonzero(near):
        inconclusive += int(2 * Fraction(float(tolerances[i])) >= abs(reference.at(int(i))))
    # Overflow, as compare() decides it (the per-sample adjoints are no means: summed = 1).
    try:
        threshold = float(overflow_threshold(dtype))
    except OverflowError:  # float64's threshold is beyond float64: nothing reaches it
        threshold = math.inf
    signs = np.isnan(tape) | (np.sign(tape) == np.sign(reference.high)) | (reference.high == 0)
    overflowed = int(np.count_nonzero(~finite & ~unbounded & signs & (reach >= threshold)))
    return _Verdicts(
        tolerances, np.broadcast_to(flushes, (n,)), ok, worst, inconclusive, overflowed
    )


def _float_node_check(
    vertex: Vertex,
    reference: FloatReference,
    tape: np.ndarray,
    k: int,
    dtype: str,
    verdicts: _Verdicts,
) -> NodeCheck:
    """Counts from the verdicts; Checks (exact differences) only for the kept samples."""
    n = tape.size

    def check_at(i: int) -> Check:
        quantity = _quantity(vertex, i, n > 1)
        if i in verdicts.made:
            return dataclasses.replace(verdicts.made[i], quantity=quantity)
        tolerance = float(verdicts.tolerances[i])
        flushes = float(verdicts.flushes[i])
        bound = bound_at(k, dtype, reference.magnitude(i), flushes, tolerance)
        made = compare(quantity, reference.at(i), float(tape[i]), bound, dtype)
        verdicts.made[i] = made
        return made

    failed = n - int(np.count_nonzero(verdicts.ok))
    kept = _kept(n, verdicts.worst)
    checks = {i: check_at(i) for i in kept}
    shown = _shown_checks(checks, n, verdicts.worst)
    return NodeCheck(
        tuple(checks[i] for i in kept),
        k,
        shown,
        kept,
        n,
        failed,
        inconclusive=verdicts.inconclusive,
        overflowed=verdicts.overflowed,
    )


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
        samples = Samples.of(problem.x, problem.y)
    fast = None if samples.exact else fast_references(backward, problem, symbolic, samples)
    exact = fast is None
    references = exact_references(backward, problem, symbolic) if fast is None else fast
    trace = _normalised(trace, exact)
    depth = None if order is None else order.depth(n, problem.dtype, kernels=True)
    counts = rounding_counts(backward, n, problem.dtype, depth)
    flush_sensitivities = underflow.sensitivities(symbolic)
    parameters = [problem.initial.values[name] for name in symbolic.parameters]
    writer = _Writer(backward, trace, n)

    nodes = []
    verdicts: dict[tuple[int, int, sp.Expr], tuple[np.ndarray, _Verdicts]] = {}
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
            k = counts[vertex.name]
            # A watched node without an adjoint on the tape fails its check (NaN).
            missing = tape_adjoints is None or len(tape_adjoints) == 0
            sensitivity = flush_sensitivities.adjoints[vertex.name]
            if isinstance(reference, FloatReference):
                tape = np.full(n, math.nan) if missing else tape_adjoints
                # Nodes that pass the same adjoint on have the same verdicts: reuse them.
                key = (id(reference), k, sensitivity.summand)
                if key not in verdicts or not np.array_equal(verdicts[key][0], tape):
                    flushes = underflow.per_sample_bounds(
                        sensitivity, symbolic, parameters, samples.x, samples.y, problem.dtype
                    )
                    verdicts[key] = (
                        tape,
                        _float_verdicts(reference, tape, k, problem.dtype, flushes),
                    )
                check = _float_node_check(
                    vertex, reference, tape, k, problem.dtype, verdicts[key][1]
                )
            else:
                tape = (math.nan,) * len(reference.values) if missing else tape_adjoints
                flushes = _exact_flushes(sensitivity, problem, symbolic, len(reference.values))
                check = _node_check(vertex, reference, tape, k, problem.dtype, flushes)
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
    replay_matches = _first(trace.values[output]) == script.loss and all(
        _first(trace.adjoints.get(name)) == value for name, value in script.gradients.items()
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
    xs, ys = problem.exact(problem.x[:count]), problem.exact(problem.y[:count])
    return underflow.per_sample_exact(sensitivity, symbolic, parameters, xs, ys, problem.dtype)


def _method(dtype: str, exact: bool, sums: Sequence[str]) -> Message:
    """How the references were computed, as a message for the report."""
    if exact:
        return Message.of("method.backward", dtype=dtype)
    allowance = int(math.log2(FLOAT_ALLOWANCE.denominator))
    return Message.of(
        "method.backward_error_free", dtype=dtype, allowance=allowance, sums=", ".join(sums)
    )


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
    samples: Samples | None = None,
    trace: BackwardTrace | None = None,
    order: Order | None = None,
) -> BackwardFacts:
    """The facts of the backward section; `trace` is the tape's node-by-node replay
    when it ran elsewhere (the training process), else it runs here, with TensorFlow.
    `order`: how the tape's kernels add up (None: not known, the order-free n - 1)."""
    if trace is None:
        from .tape import backward_at

        trace = backward_at(problem, graph_nodes(symbolic))
    return build_backward(problem, symbolic, formulas, trace, script, samples=samples, order=order)


def graph_nodes(symbolic: Symbolic) -> tuple[Node, ...]:
    """The ops of the model and the loss, in the order the script runs them."""
    return (*symbolic.model.graph, *symbolic.loss_definition.graph)


def stand_in_backward(problem: Problem, symbolic: Symbolic) -> BackwardTrace:
    """The node-by-node replay computed with NumPy in the problem's dtype, for the draft
    report (:func:`derive.report.draft`) that renders the formulas while TensorFlow
    trains. Each forward op rounds once, as on the tape, so most of the numbers the
    section shows come out the same and their formulas are rendered ahead of time. The
    report itself always uses the tape's replay."""
    from .tape import BackwardTrace

    graph = graph_of(symbolic.model, symbolic.loss_definition)
    backward = derive_adjoints(graph, symbolic)
    dtype = np.dtype(problem.dtype).type
    x, y = np.asarray(problem.x, dtype=dtype), np.asarray(problem.y, dtype=dtype)
    parameters = [dtype(problem.initial.values[name]) for name in symbolic.parameters]
    leaves = {**dict(zip(symbolic.parameters, parameters, strict=True)), "x": x, "y": y}
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
        arguments = [*symbolic.parameters.values(), *DATA.values()]
        adjoints: dict[str, np.ndarray | None] = dict.fromkeys(values)
        for vertex in graph:
            if vertex.name not in backward.adjoints:
                continue
            term = backward.leaf_form(backward.adjoints[vertex.name]).subs(N, problem.n)
            function = sp.lambdify(arguments, term, "numpy")
            each = np.broadcast_to(np.asarray(function(*parameters, x, y), dtype=dtype), x.shape)
            if vertex.name in backward.broadcast:
                adjoints[vertex.name] = np.atleast_1d(np.sum(each, dtype=dtype))
            else:
                adjoints[vertex.name] = each if vertex.per_sample else each[:1]
    recorded = tuple(v.op.tf_type for v in op_vertices(graph) if v.op is not None)
    return BackwardTrace(values=values, adjoints=adjoints, recorded_ops=recorded)
