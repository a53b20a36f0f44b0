"""Reverse mode by hand over the tape's graph: symbolic adjoints, exact values, rounding counts.

The graph is the model's and the loss's node lists (``derive.models.registry``), the same ops
the original script executes. Starting from dL/dL = 1, each node passes the adjoint on
to its inputs times its local derivative, which is SymPy's derivative of the op's
forward function (the mean gives 1/n to each element). A scalar used by every sample
(W, b) collects the sum over the samples. Each adjoint found this way can be checked
against differentiating L directly with respect to that node (:func:`direct_adjoint`).

The adjoints are evaluated exactly, in rational arithmetic at the values the tape
used (:func:`exact_references`), and :func:`rounding_counts` gives, for each one, the
k of the bound gamma_k * M on the error of computing it in floating point. For many
samples, :func:`fast_references` evaluates them in float64 instead, with a stated
bound on their own error (see ``FLOAT_ALLOWANCE``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from ..common.errors import InputError
from ..exact.expansion import MAX_PAIR_PARTS, Expansion, divided, double_double
from ..exact.reference import exact_sum
from ..models.ops import Op, get_op
from ..models.registry import Loss, Model
from .derivation import X_I, Y_I, I, N, Symbolic, absolute_form

if TYPE_CHECKING:
    from ..exact.reference import Samples
    from ..problem.problem import Problem

DATA = {"x": X_I, "y": Y_I}  # the data leaves: constants the tape does not watch


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


def op_vertices(graph: Sequence[Vertex]) -> list[Vertex]:
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
            {self.symbols[v.name]: self.expressions[v.name] for v in op_vertices(self.graph)}
        )

    @property
    def output(self) -> str:
        return self.graph[-1].name


def _leaf_symbols(symbolic: Symbolic) -> dict[str, sp.Expr]:
    return {**symbolic.parameters, **DATA}


def _expressions(
    graph: Sequence[Vertex],
    symbolic: Symbolic,
    replace: str | None = None,
    by: sp.Expr | None = None,
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
    symbols = _leaf_symbols(symbolic) | {
        v.name: sp.Symbol(f"node_{v.name}") for v in op_vertices(graph)
    }
    vertices = {v.name: v for v in graph}
    output = graph[-1].name
    adjoints: dict[str, sp.Expr] = {output: sp.Integer(1)}
    locals_: dict[tuple[str, str], sp.Expr] = {}
    broadcast: set[str] = set()
    summed: dict[str, set[bool]] = {}
    for consumer in reversed(op_vertices(graph)):
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


def is_zero(expr: sp.Expr) -> bool:
    """SymPy proves expr == 0."""
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
    expected = symbolic.loss_definition.outer(
        symbolic.loss_definition.inner(symbolic.prediction, Y_I)
    )
    return is_zero(backward.expressions[prediction] - symbolic.prediction) and is_zero(
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


def division_roundings(n: int, dtype: str, reciprocal: bool = False) -> int:
    """Roundings of dividing by n as the tape does: by ``static_cast<T>(n)`` (the mean)
    or by the constant n (its gradient, ``truediv(Tile(1), n)``). None for a power of two
    (exact), one for the quotient, one more where the dtype cannot hold n itself (float32
    beyond 2^24). `reciprocal`: multiplied by a rounded 1/n instead (as XLA may do), one
    more again."""
    if _power_of_two(sp.Integer(n)):
        return 0
    quotient = 1 if _representable(sp.Integer(n), dtype) else 2
    return quotient + (1 if reciprocal else 0)


def _forward_counts(
    backward: SymbolicBackward, n: int, dtype: str, depth: int, division: int
) -> dict[sp.Basic, int]:
    """Roundings of each node's forward value: a leaf none, an op what its formula gives
    from its inputs' counts, the mean `depth` (the sum) + `division` more."""
    forward: dict[sp.Basic, int] = {}
    for vertex in backward.graph:
        symbol = backward.symbols[vertex.name]
        if vertex.op is None:
            forward[symbol] = 0
        elif vertex.op.reduces:
            (term,) = vertex.inputs
            forward[symbol] = forward[backward.symbols[term]] + depth + division
        else:
            dummies = sp.symbols(f"a0:{vertex.op.arity}")
            known = {
                d: forward[backward.symbols[name]]
                for d, name in zip(dummies, vertex.inputs, strict=True)
            }
            forward[symbol] = roundings(vertex.op.forward(*dummies), known, dtype)
    return forward


def forward_roundings(
    backward: SymbolicBackward,
    n: int,
    dtype: str,
    depth: int | None = None,
    *,
    reciprocal: bool = False,
) -> int:
    """k of the loss (the graph's output) as the tape computes it: its terms' roundings,
    the sum's `depth` (None: n - 1, one long chain) and the division by n."""
    depth = n - 1 if depth is None else depth
    division = division_roundings(n, dtype, reciprocal)
    forward = _forward_counts(backward, n, dtype, depth, division)
    return forward[backward.symbols[backward.output]]


def rounding_counts(
    backward: SymbolicBackward, n: int, dtype: str, depth: int | None = None
) -> dict[str, int]:
    """k for each node's adjoint as TensorFlow computes it.

    Forward values carry their own roundings (a leaf none). Going backward, dL/dL = 1
    is exact; an op passes on upstream * local derivative: nothing is rounded when the
    local derivative is +-1, the mean's gradient divides by n (:func:`division_roundings`),
    otherwise the roundings of the local derivative (it is made of forward values)
    plus one for the product: a product of values with k1 and k2 roundings has
    k1 + k2 + 1. A scalar used by every sample adds the depth of the sum over the
    samples: `depth` (TensorFlow's order, :mod:`derive.tape.summation`), or n - 1 (None).
    """
    depth = n - 1 if depth is None else depth
    division = division_roundings(n, dtype)
    forward = _forward_counts(backward, n, dtype, depth, division)
    counts: dict[str, list[int]] = {backward.output: [0]}
    for consumer in reversed(op_vertices(backward.graph)):
        assert consumer.op is not None
        upstream = max(counts[consumer.name]) + len(counts[consumer.name]) - 1
        for name in consumer.inputs:
            if (consumer.name, name) not in backward.locals:
                continue
            local = backward.locals[(consumer.name, name)].subs(N, n)
            if consumer.op.reduces:
                step = division
            elif local.is_Number and _power_of_two(local):
                step = 0
            else:
                step = roundings(local, forward, dtype) + 1
            if name in backward.broadcast:
                step += depth
            counts.setdefault(name, []).append(upstream + step)
    return {name: max(ks) + len(ks) - 1 for name, ks in counts.items()}


@dataclass(frozen=True)
class Reference:
    """Adjoint of one node per sample (one entry for scalars), and its magnitude M.

    Exact unless `allowance` > 0: then each value is within allowance * M of the exact one.
    """

    values: tuple[Fraction, ...]
    magnitudes: tuple[Fraction, ...]
    allowance: Fraction = Fraction(0)


def exact_references(
    backward: SymbolicBackward,
    problem: Problem,
    symbolic: Symbolic,
) -> dict[str, Reference]:
    """The symbolic adjoints evaluated exactly at the dtype values the tape used."""
    xs, ys = problem.exact(problem.x), problem.exact(problem.y)
    parameters = {symbolic.parameters[k]: Fraction(v) for k, v in problem.initial.values.items()}
    samples = [{**parameters, X_I: x, Y_I: y} for x, y in zip(xs, ys, strict=True)]
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
# Many samples: float64 instead of rational arithmetic

# A per-sample adjoint is a short polynomial in W, b, x_i, y_i over an integer. Its
# terms are held exactly as float64 expansions, reduced to a pair high + low of float64
# numbers and divided by the integer (derive.exact.expansion): within 2^-94 M_i of the exact
# value, M_i its magnitude. FLOAT_ALLOWANCE * M_i, added to each per-sample tolerance,
# covers that; it is 2^37 times finer than a float64 ULP of M_i, so negligible for a
# float32 or a float64 tape alike.
FLOAT_ALLOWANCE = Fraction(1, 2**90)
# Magnitudes are plain float64, on absolute values: up to this many roundings each, an
# enlargement by 1 + 2^-47 keeps them upper bounds.
MAX_FLOAT_ROUNDINGS = 16
# The error of a correctly rounded sum of exactly held terms (half a float64 ULP),
# doubled as in section 6 (reference.rounding_bound).
SUM_ALLOWANCE = Fraction(1, 2**52)


@dataclass(frozen=True)
class FloatReference:
    """Adjoint of one node at every sample as float64 pairs (for many samples).

    Each value high_i + low_i is within `allowance` * M_i of the exact one;
    `magnitudes` are upper bounds of the exact M_i. An adjoint that is the same for
    every sample (1/n) is held as 0-d arrays; NumPy broadcasts them.
    """

    high: np.ndarray
    low: np.ndarray
    magnitudes: np.ndarray
    allowance: Fraction

    def at(self, index: int) -> Fraction:
        return Fraction(_entry(self.high, index)) + Fraction(_entry(self.low, index))

    def magnitude(self, index: int) -> float:
        return _entry(self.magnitudes, index)


def _entry(values: np.ndarray, index: int) -> float:
    return float(values[index] if values.ndim else values)


@dataclass(frozen=True)
class _Split:
    """A per-sample term as numerator / denominator, ready for float64 evaluation."""

    numerator: sp.Expr  # a polynomial with integer coefficients in the leaves
    denominator: int
    roundings: int  # k64: roundings of numerator / denominator in float64


def _split(term: sp.Expr, symbolic: Symbolic) -> _Split | None:
    """term = numerator / denominator, or None when float64 cannot evaluate it as stated."""
    leaves = [*symbolic.parameters.values(), X_I, Y_I]
    numerator, denominator = sp.fraction(sp.together(term))
    if not (denominator.is_Integer and denominator > 0 and numerator.is_polynomial(*leaves)):
        return None
    numbers = [a for a in numerator.atoms(sp.Number) if not a.is_Integer or abs(a) >= 2**53]
    if numbers:
        return None
    k = roundings(numerator, dict.fromkeys(leaves, 0), "float64")
    k += 0 if _power_of_two(denominator) else 1
    if k > MAX_FLOAT_ROUNDINGS:
        return None
    return _Split(numerator, int(denominator), k)


def _on_samples(value: object, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def fast_references(
    backward: SymbolicBackward,
    problem: Problem,
    symbolic: Symbolic,
    samples: Samples,
) -> dict[str, Reference | FloatReference] | None:
    """The symbolic adjoints at every sample, with float64 arrays and a bounded error.

    Every term is held exactly as a float64 expansion (:mod:`derive.exact.expansion`).
    Per-sample adjoints: reduced to pairs of float64 arrays (``FloatReference``). A
    scalar used by every sample: summed with a correctly rounded sum. Other scalars:
    exactly. Magnitudes are float64 on absolute values, enlarged so that they stay upper
    bounds. None when some adjoint is not a short polynomial over an integer (the caller
    then takes the exact path).
    """
    n = problem.n
    splits = {}
    for name, adjoint in backward.adjoints.items():
        split = _split(backward.leaf_form(adjoint).subs(N, n), symbolic)
        if split is None:
            return None
        splits[name] = split
    exact_parameters = {
        name: Fraction(problem.initial.values[name]) for name in symbolic.parameters
    }
    parameters = [float(v) for v in exact_parameters.values()]
    absolute = [abs(v) for v in parameters]
    x_abs, y_abs = np.abs(samples.x), np.abs(samples.y)
    leaves = [Expansion.of(v) for v in (*parameters, samples.x, samples.y)]
    pairs: dict[sp.Expr, tuple[np.ndarray, np.ndarray] | None] = {}

    def pair(numerator: sp.Expr) -> tuple[np.ndarray, np.ndarray] | None:
        """numerator at every sample as high + low; None if it has too many parts."""
        if numerator not in pairs:
            held = symbolic.sample_function(numerator)(*leaves)
            if not isinstance(held, Expansion):  # it does not depend on the samples
                held = Expansion.of(float(held))
            too_many = len(held.parts) > MAX_PAIR_PARTS
            pairs[numerator] = None if too_many else double_double(held)
        return pairs[numerator]

    vertices = {v.name: v for v in backward.graph}
    per_sample = [k for k in splits if vertices[k].per_sample and k not in backward.broadcast]
    if any(pair(splits[name].numerator) is None for name in per_sample):
        return None
    references: dict[str, Reference | FloatReference] = {}
    shared: dict[_Split, FloatReference] = {}
    for name, split in splits.items():
        magnitude = symbolic.sample_function(absolute_form(split.numerator))
        if name in backward.broadcast:
            summed = exact_sum(symbolic, split.numerator, exact_parameters, samples)
            value = Fraction(summed) / split.denominator
            # n non-negative terms of k64 roundings each: below (n + k64) 2^-53 relative.
            terms = _on_samples(magnitude(*absolute, x_abs, y_abs), n)
            enlarged = 1 + Fraction(n + split.roundings + 8, 2**52)
            bound = Fraction(float(np.sum(terms))) * enlarged / split.denominator
            references[name] = Reference((value,), (bound,), SUM_ALLOWANCE)
        elif not vertices[name].per_sample:
            x, y = samples.fractions(0)
            exact_leaves = {symbolic.parameters[k]: v for k, v in exact_parameters.items()}
            at_first = {**exact_leaves, X_I: x, Y_I: y}
            value = exact_value(split.numerator, at_first) / split.denominator
            bound = exact_value(
                absolute_form(split.numerator), {k: abs(v) for k, v in at_first.items()}
            )
            references[name] = Reference((value,), (bound / split.denominator,))
        else:
            # Nodes with the same adjoint (r_i, y_hat_i, (W x)_i) share one reference.
            if split not in shared:
                magnitudes = magnitude(*absolute, x_abs, y_abs)
                shared[split] = _float_reference(split, pair(split.numerator), magnitudes)
            references[name] = shared[split]
    return references


def _float_reference(
    split: _Split, pair: tuple[np.ndarray, np.ndarray] | None, magnitudes: object
) -> FloatReference:
    """numerator / denominator from the numerator's pair and its magnitudes on |leaves|."""
    assert pair is not None
    high, low = pair
    terms = np.asarray(magnitudes, dtype=np.float64)
    if split.denominator != 1:
        high, low = divided(high, low, split.denominator)
        terms = terms / split.denominator
    if split.roundings == 0:  # nothing rounded: exact values and magnitudes
        return FloatReference(high, low, terms, Fraction(0))
    # Computed with k64 <= 16 roundings, each magnitude is at least M_i (1 - 2^-49);
    # 1 + 2^-47 (itself rounded once) lifts it above M_i.
    return FloatReference(high, low, terms * (1 + 2.0**-47), FLOAT_ALLOWANCE)
