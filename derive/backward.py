"""The tape's own calculation: the backward pass node by node, checked against the chain rule.

The graph is the model's and the loss's node lists (``derive.models``), the same ops
the original script executes. Two things are derived from it:

* symbolically, reverse mode by hand: starting from dL/dL = 1, each node passes the
  adjoint on to its inputs times its local derivative, which is SymPy's derivative of
  the op's forward function (the mean gives 1/n to each element). A scalar used by
  every sample (W, b) collects the sum over the samples. Each adjoint found this way is
  checked equal to differentiating L directly with respect to that node, and the sums
  for the parameters equal to the derivation of the core report;
* numerically, TensorFlow's own adjoints (:func:`derive.tape.backward_at`), compared
  with the symbolic ones evaluated exactly in rational arithmetic, with a tolerance
  gamma_k * M from the rounding-error bound of the float computation (see
  :func:`rounding_counts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from .check import Check, compare, gamma_bound
from .errors import InputError
from .models import Loss, Model
from .numbers import latex_number
from .ops import Op, get_op
from .symbolic import X_I, Y_I, Formula, I, N, ReportLatexPrinter, Symbolic, absolute_form
from .symbolic import shown_terms as _shown_terms

if TYPE_CHECKING:
    from .problem import Problem
    from .tape import BackwardTrace, TapeResult

DATA = {"x": X_I, "y": Y_I}  # the data leaves: constants the tape does not watch
MAX_TABLE_ROWS = 20  # as in the per-sample table: beyond this, tables show their ends only
EDGE_ROWS = 5
SHOWN_WORKED = 3  # samples worked out with numbers before the middle is elided
SHOWN_CHECKS = 3  # per-sample checks listed one by one; beyond, the worst one


# ---------------------------------------------------------------------------------------
# The graph


@dataclass(frozen=True)
class Vertex:
    """A node of the graph: a parameter, a data vector, or an op applied to earlier nodes."""

    name: str
    kind: str  # "parameter", "data" or "op"
    op: Op | None
    inputs: tuple[str, ...]
    symbol: str  # LaTeX of its value at sample i (`_{i}`), or of the scalar
    label: str  # plain text, for the drawing
    per_sample: bool  # one value per sample, or one scalar

    @property
    def watched(self) -> bool:
        """The tape differentiates with respect to variables and what is computed from them."""
        return self.kind != "data"


def graph_of(model: Model, loss: Loss) -> tuple[Vertex, ...]:
    """Leaves (parameters, then x and y), then the ops in the order the script runs them."""
    nodes = (*model.graph, *loss.graph)
    if not nodes:
        raise InputError("no op graph is registered for this model and loss", model.name)
    vertices: dict[str, Vertex] = {}
    for name in model.parameters:
        vertices[name] = Vertex(name, "parameter", None, (), name, name, False)
    for name in DATA:
        vertices[name] = Vertex(name, "data", None, (), f"{name}_{{i}}", name, True)
    for node in nodes:
        op = get_op(node.op)
        missing = [name for name in node.inputs if name not in vertices]
        if missing or len(node.inputs) != op.arity or node.name in vertices:
            raise InputError("malformed op graph at node", node.name)
        per_sample = not op.reduces and any(vertices[n].per_sample for n in node.inputs)
        vertices[node.name] = Vertex(
            node.name, "op", op, node.inputs, node.symbol, node.label, per_sample
        )
    last = vertices[nodes[-1].name]
    if last.op is None or not last.op.reduces:
        raise InputError("the op graph must end in a mean over the samples", last.name)
    return tuple(vertices.values())


def _ops(graph: Sequence[Vertex]) -> list[Vertex]:
    return [v for v in graph if v.kind == "op"]


# ---------------------------------------------------------------------------------------
# Reverse mode, symbolically


@dataclass(frozen=True)
class SymbolicBackward:
    """Every node's value and adjoint at sample i, as SymPy expressions.

    Adjoints are written with one symbol per node (r_i, not W x_i + b - y_i), the way
    the tape holds them; `leaf_form` expands them to parameters and data.
    """

    graph: tuple[Vertex, ...]
    symbols: Mapping[str, sp.Expr]  # node -> the symbol standing for its value at sample i
    expressions: Mapping[str, sp.Expr]  # node -> its value at sample i, from leaves only
    locals: Mapping[tuple[str, str], sp.Expr]  # (consumer, input) -> local derivative
    adjoints: Mapping[str, sp.Expr]  # node -> dL/d(node_i); for a broadcast: the i-th term
    broadcast: frozenset[str]  # scalars whose adjoint is the sum over i of their term

    def leaf_form(self, expr: sp.Expr) -> sp.Expr:
        return expr.xreplace(
            {self.symbols[v.name]: self.expressions[v.name] for v in _ops(self.graph)}
        )

    @property
    def output(self) -> str:
        return self.graph[-1].name


def _leaf_symbols(symbolic: Symbolic) -> dict[str, sp.Expr]:
    return {**symbolic.parameters, **DATA}


def _expressions(
    graph: Sequence[Vertex], symbolic: Symbolic, replace: str | None = None, by: sp.Expr = None
) -> dict[str, sp.Expr]:
    """Each node's value at sample i from the leaves; node `replace` is taken to be `by`."""
    expressions: dict[str, sp.Expr] = {}
    for vertex in graph:
        if vertex.name == replace:
            expressions[vertex.name] = by
        elif vertex.op is None:
            expressions[vertex.name] = _leaf_symbols(symbolic)[vertex.name]
        elif vertex.op.reduces:
            (term,) = (expressions[name] for name in vertex.inputs)
            expressions[vertex.name] = sp.Mul(sp.Pow(N, -1), sp.Sum(term, (I, 1, N)))
        else:
            expressions[vertex.name] = vertex.op.forward(
                *(expressions[name] for name in vertex.inputs)
            )
    return expressions


def local_derivative(op: Op, position: int, operands: Sequence[sp.Expr]) -> sp.Expr:
    """d op / d operand[position], by SymPy from the op's forward function (mean: 1/n)."""
    if op.reduces:
        return sp.Pow(N, -1)
    dummies = sp.symbols(f"a0:{op.arity}")
    derivative = sp.diff(op.forward(*dummies), dummies[position])
    return derivative.xreplace(dict(zip(dummies, operands, strict=True)))


def derive_adjoints(graph: Sequence[Vertex], symbolic: Symbolic) -> SymbolicBackward:
    """Reverse mode: dL/dL = 1, then each op passes upstream * local derivative to its inputs."""
    symbols = _leaf_symbols(symbolic) | {v.name: sp.Symbol(f"node_{v.name}") for v in _ops(graph)}
    vertices = {v.name: v for v in graph}
    output = graph[-1].name
    adjoints: dict[str, sp.Expr] = {output: sp.Integer(1)}
    locals_: dict[tuple[str, str], sp.Expr] = {}
    broadcast: set[str] = set()
    summed: dict[str, set[bool]] = {}
    for consumer in reversed(_ops(graph)):
        assert consumer.op is not None
        upstream = adjoints[consumer.name]
        operands = [symbols[name] for name in consumer.inputs]
        for position, name in enumerate(consumer.inputs):
            target = vertices[name]
            if not target.watched:
                continue
            local = local_derivative(consumer.op, position, operands)
            locals_[(consumer.name, name)] = local
            is_sum = not target.per_sample and (consumer.per_sample or consumer.op.reduces)
            summed.setdefault(name, set()).add(is_sum)
            if is_sum:
                broadcast.add(name)
            adjoints[name] = adjoints.get(name, sp.Integer(0)) + upstream * local
    mixed = [name for name, kinds in summed.items() if len(kinds) > 1]
    if mixed:
        raise NotImplementedError(f"node {mixed[0]} is used both per sample and as a scalar")
    return SymbolicBackward(
        graph=tuple(graph),
        symbols=symbols,
        expressions=_expressions(graph, symbolic),
        locals=locals_,
        adjoints=adjoints,
        broadcast=frozenset(broadcast),
    )


def _zero(expr: sp.Expr) -> bool:
    return sp.simplify(sp.expand(expr)) == 0


def direct_adjoint(backward: SymbolicBackward, symbolic: Symbolic, name: str) -> sp.Expr:
    """dL/d(node_i) without the chain rule: differentiate the loss for the node's value."""
    if name == backward.output:
        return sp.Integer(1)
    t = sp.Symbol("t")
    graph = backward.graph
    if name in symbolic.parameters:
        expressions = _expressions(graph, symbolic)
        per_sample_loss = expressions[graph[-1].inputs[0]]
        return sp.diff(per_sample_loss, symbolic.parameters[name]) / N
    expressions = _expressions(graph, symbolic, replace=name, by=t)
    per_sample_loss = expressions[graph[-1].inputs[0]]
    return (sp.diff(per_sample_loss, t) / N).xreplace({t: backward.expressions[name]})


def matches_definition(backward: SymbolicBackward, symbolic: Symbolic) -> bool:
    """The nodes compose to the model's prediction and the loss's per-sample term."""
    prediction = symbolic.model.graph[-1].name
    per_sample_loss = backward.graph[-1].inputs[0]
    expected = symbolic.loss_definition.outer(symbolic.loss_definition.inner(
        symbolic.prediction, Y_I
    ))
    return _zero(backward.expressions[prediction] - symbolic.prediction) and _zero(
        backward.expressions[per_sample_loss] - expected
    )


# ---------------------------------------------------------------------------------------
# Exact values and rounding-error bounds


def exact_value(expr: sp.Expr, values: Mapping[sp.Basic, Fraction]) -> Fraction:
    """expr in rational arithmetic, with `values` for its symbols."""
    if expr in values:
        return values[expr]
    if expr.is_Rational:
        return Fraction(int(expr.p), int(expr.q))
    if isinstance(expr, sp.Add):
        return sum((exact_value(a, values) for a in expr.args), Fraction(0))
    if isinstance(expr, sp.Mul):
        result = Fraction(1)
        for factor in expr.args:
            result *= exact_value(factor, values)
        return result
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer:
        return exact_value(expr.base, values) ** int(expr.exp)
    raise NotImplementedError(f"no exact evaluation for {expr!r}")


def _representable(value: sp.Number, dtype: str) -> bool:
    exact = Fraction(int(value.p), int(value.q)) if value.is_Rational else None
    return exact is not None and Fraction(float(np.asarray(float(exact), dtype=dtype))) == exact


def _power_of_two(value: sp.Expr) -> bool:
    """Multiplying by +-2^j is exact in binary floating point (barring under/overflow)."""
    if not value.is_Rational or value == 0:
        return False
    p, q = abs(int(value.p)), int(value.q)
    return (p & (p - 1)) == 0 and (q & (q - 1)) == 0


def roundings(expr: sp.Expr, known: Mapping[sp.Basic, int], dtype: str) -> int:
    """Roundings on the longest chain when expr is computed in floating point.

    A sum of m terms adds m - 1 to the largest count among its terms; a product adds
    the counts of its factors and one per multiplication, except by a power of two
    (exact); a constant the dtype cannot hold is itself one rounding.
    """
    if expr in known:
        return known[expr]
    if expr.is_Number:
        return 0 if _representable(expr, dtype) else 1
    if isinstance(expr, sp.Add):
        return max(roundings(a, known, dtype) for a in expr.args) + len(expr.args) - 1
    if isinstance(expr, sp.Mul):
        factors = [a for a in expr.args if not _power_of_two(a)]
        return sum(roundings(a, known, dtype) for a in factors) + max(len(factors) - 1, 0)
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        power = int(expr.exp)
        return power * roundings(expr.base, known, dtype) + power - 1
    raise NotImplementedError(f"no rounding count for {expr!r}")


def rounding_counts(backward: SymbolicBackward, n: int, dtype: str) -> dict[str, int]:
    """k for each node's adjoint as TensorFlow computes it.

    Forward values carry their own roundings (a leaf none). Going backward, dL/dL = 1
    is exact; an op passes on upstream * local derivative: nothing is rounded when the
    local derivative is +-1, the mean divides by n (one rounding unless n is a power of
    two), otherwise the roundings of the local derivative (it is made of forward values)
    plus one for the product. A scalar used by every sample adds n - 1 for the sum.
    """
    forward: dict[sp.Basic, int] = {}
    for vertex in backward.graph:
        symbol = backward.symbols[vertex.name]
        if vertex.op is None:
            forward[symbol] = 0
        elif vertex.op.reduces:
            (term,) = vertex.inputs
            forward[symbol] = forward[backward.symbols[term]] + n
        else:
            dummies = sp.symbols(f"a0:{vertex.op.arity}")
            known = {
                d: forward[backward.symbols[name]]
                for d, name in zip(dummies, vertex.inputs, strict=True)
            }
            forward[symbol] = roundings(vertex.op.forward(*dummies), known, dtype)
    counts: dict[str, list[int]] = {backward.output: [0]}
    for consumer in reversed(_ops(backward.graph)):
        assert consumer.op is not None
        upstream = max(counts[consumer.name]) + len(counts[consumer.name]) - 1
        for name in consumer.inputs:
            if (consumer.name, name) not in backward.locals:
                continue
            local = backward.locals[(consumer.name, name)].subs(N, n)
            if consumer.op.reduces:
                step = 0 if _power_of_two(sp.Integer(n)) else 1
            elif local.is_Number and _power_of_two(local):
                step = 0
            else:
                step = roundings(local, forward, dtype) + 1
            if name in backward.broadcast:
                step += n - 1
            counts.setdefault(name, []).append(upstream + step)
    return {name: max(ks) + len(ks) - 1 for name, ks in counts.items()}


@dataclass(frozen=True)
class Reference:
    """Exact adjoint of one node per sample (one entry for scalars), and its magnitude M."""

    values: tuple[Fraction, ...]
    magnitudes: tuple[Fraction, ...]


def exact_references(
    backward: SymbolicBackward,
    problem: Problem,
    symbolic: Symbolic,
) -> dict[str, Reference]:
    """The symbolic adjoints evaluated exactly at the dtype values the tape used."""
    xs, ys = problem.exact(problem.x), problem.exact(problem.y)
    parameters = {symbolic.parameters[k]: Fraction(v) for k, v in problem.initial.values.items()}
    samples = [
        {**parameters, X_I: x, Y_I: y} for x, y in zip(xs, ys, strict=True)
    ]
    magnitude_samples = [{k: abs(v) for k, v in sample.items()} for sample in samples]
    vertices = {v.name: v for v in backward.graph}
    references: dict[str, Reference] = {}
    for name, adjoint in backward.adjoints.items():
        term = backward.leaf_form(adjoint).subs(N, problem.n)
        magnitude = absolute_form(term)
        values = [exact_value(term, s) for s in samples]
        magnitudes = [exact_value(magnitude, s) for s in magnitude_samples]
        if name in backward.broadcast:
            values = [sum(values, Fraction(0))]
            magnitudes = [sum(magnitudes, Fraction(0))]
        elif not vertices[name].per_sample:
            values, magnitudes = values[:1], magnitudes[:1]
        references[name] = Reference(tuple(values), tuple(magnitudes))
    return references


def exact_forward_values(
    backward: SymbolicBackward, problem: Problem, symbolic: Symbolic
) -> dict[str, tuple[Fraction, ...]]:
    """Every node's exact value (for tests and for comparison with the tape's values)."""
    xs, ys = problem.exact(problem.x), problem.exact(problem.y)
    parameters = {symbolic.parameters[k]: Fraction(v) for k, v in problem.initial.values.items()}
    values: dict[str, tuple[Fraction, ...]] = {}
    for vertex in backward.graph:
        if vertex.op is not None and vertex.op.reduces:
            (term,) = vertex.inputs
            values[vertex.name] = (vertex.op.forward(list(values[term])),)
            continue
        expression = backward.expressions[vertex.name]
        row = [
            exact_value(expression, {**parameters, X_I: x, Y_I: y})
            for x, y in zip(xs, ys, strict=True)
        ]
        values[vertex.name] = tuple(row if vertex.per_sample else row[:1])
    return values


# ---------------------------------------------------------------------------------------
# Facts for the report


@dataclass(frozen=True)
class ShownCheck:
    label: str  # "1", "2", or "7 (worst of 17)"; "" for a scalar
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
    rule: str  # the op's local rule in words
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
    reference_method: str

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
    def failures(self) -> tuple[str, ...]:
        """What disagrees, one short sentence each (empty when everything agrees)."""
        found = []
        for node in self.nodes:
            if node.check is None:
                continue
            if not node.expected_verified:
                found.append(f"the chain rule's adjoint at {node.label} is not dL/d{node.label}")
            failed = sum(not check.ok for check in node.check.checks)
            if failed:
                where = f"{failed} of {len(node.check.checks)} samples" if node.per_sample else ""
                found.append(
                    f"the tape's adjoint at {node.label} is beyond its bound"
                    + (f" ({where})" if where else "")
                )
        found += [
            f"the sum for dL/d{s.parameter} differs from the derivative of section 2"
            for s in self.sums
            if not s.meets_derivation
        ]
        if not self.ops_match:
            found.append("the replayed ops differ from those TensorFlow records")
        if not self.matches_definition:
            found.append("the nodes do not compose to the model's formulas")
        if not self.replay_matches:
            found.append("the replay's loss or gradients differ from tape.gradient")
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

    def __init__(
        self, backward: SymbolicBackward, trace: BackwardTrace, n: int
    ) -> None:
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
            rule = (
                f"{_partial(target.symbol)} = \\sum_{{i=1}}^{{n}} "
                + product(self.latex(local), upstream)
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
        shown = (ShownCheck(f"{worst + 1} (worst of {len(checks)})", checks[worst]),)
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
            verified = _zero(backward.leaf_form(adjoint) - direct)
            check = _node_check(
                vertex, references[vertex.name], tape_adjoints or (), counts[vertex.name],
                problem.dtype,
            )
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
        for consumer in reversed(_ops(graph))
        if consumer.op is not None
    )

    sums = []  # in the order the tape reaches them: last op first
    for consumer in reversed(_ops(graph)):
        for name in consumer.inputs:
            if name not in backward.broadcast:
                continue
            sums.append(
                _broadcast_sum(writer, backward, consumer, name, formulas[name], n)
            )

    replayed = tuple(v.op.tf_type for v in _ops(graph) if v.op is not None)
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
        reference_method=(
            f"the chain-rule adjoints evaluated in exact rational arithmetic at the "
            f"{problem.dtype} values the tape used"
        ),
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
    meets = _zero(backward.leaf_form(term) - formula.coefficient * formula.summand)
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
    run: Callable[[Problem, Sequence[object]], BackwardTrace] | None = None,
) -> BackwardFacts:
    """Run the tape node by node and build the facts (TensorFlow is imported here)."""
    if run is None:
        from .tape import backward_at as run
    nodes = (*symbolic.model.graph, *symbolic.loss_definition.graph)
    trace = run(problem, nodes)
    return build_backward(problem, symbolic, formulas, trace, script)
