"""Reverse mode by hand over the tape's graph: the adjoint of every node, in SymPy.

The graph is the model's and the loss's node lists (``derive.models.registry``), the same ops
the original script executes. Starting from dL/dL = 1, each node passes the adjoint on
to its inputs times its local derivative, which is SymPy's derivative of the op's
forward function (the mean gives 1/n to each element). A scalar used by every sample
(W, b) collects the sum over the samples. Each adjoint found this way can be checked
against differentiating L directly with respect to that node (:func:`direct_adjoint`).

derive/exact/adjoint_values.py evaluates the adjoints; derive/exact/roundings.py
counts, for each one, the k of the bound gamma_k * M on its floating-point error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy as sp

from ..common.errors import InputError
from ..common.i18n import readable_name
from ..models.ops import Op, get_op
from ..models.registry import Loss, Model
from .derivation import X_I, Y_I, I, N, Symbolic
from .derivation import is_zero as proved_zero
from .symbols import feature_symbols

DATA = {"x": X_I, "y": Y_I}  # one feature's data leaves: constants the tape does not watch


def data_leaves(model: Model) -> dict[str, sp.Expr]:
    """The data leaves by name (x, or x_1 ... x_k, then y) and their symbols at sample i."""
    return {
        **dict(zip(model.data, feature_symbols(model.features), strict=True)),
        "y": Y_I,
    }


def _data_symbol(name: str) -> str:
    """x_i, x_{i,1}, y_i."""
    if name.startswith("x_"):
        return f"x_{{i,{name[2:]}}}"
    return f"{name}_{{i}}"


# How a loss's scalar constants are written (their values are the loss entry's)
_CONSTANT_SYMBOLS = {"delta": r"\delta", "half": r"\tfrac{1}{2}"}
_CONSTANT_LABELS = {"delta": "δ", "half": "½"}


# ---------------------------------------------------------------------------------------
# The graph


@dataclass(frozen=True)
class Vertex:
    """A node of the graph: a parameter, a data vector, or an op applied to earlier nodes."""

    name: str
    kind: str  # "parameter", "data", "constant" or "op"
    op: Op | None
    inputs: tuple[str, ...]
    symbol: str  # LaTeX of its value at sample i (`_{i}`), or of the scalar
    label: str  # plain text, for the drawing
    per_sample: bool  # one value per sample, or one scalar
    # The tape differentiates with respect to variables and what is computed from them;
    # a node computed from the data alone (x_i^2) is a constant to it, as x and y are.
    watched: bool = True


def graph_of(model: Model, loss: Loss) -> tuple[Vertex, ...]:
    """Leaves (parameters, then x and y), then the ops in the order the script runs them."""
    nodes = (*model.graph, *loss.graph)
    if not nodes:
        raise InputError("no op graph is registered for this model and loss", model.name)
    vertices: dict[str, Vertex] = {}
    for name in model.parameters:
        vertices[name] = Vertex(name, "parameter", None, (), name, readable_name(name), False)
    for name in data_leaves(model):
        label = readable_name(name)
        vertices[name] = Vertex(name, "data", None, (), _data_symbol(name), label, True, False)
    for name, value in loss.constants:
        vertices[name] = Vertex(
            name,
            "constant",
            None,
            (),
            _CONSTANT_SYMBOLS.get(name, name),
            _CONSTANT_LABELS.get(name, str(value)),
            False,
            False,
        )
    for node in nodes:
        op = get_op(node.op)
        missing = [name for name in node.inputs if name not in vertices]
        if missing or not op.takes(len(node.inputs)) or node.name in vertices:
            raise InputError("malformed op graph at node", node.name)
        per_sample = not op.reduces and any(vertices[n].per_sample for n in node.inputs)
        # a comparison's flag carries no gradient: nothing flows back through it
        watched = op.differentiable and any(vertices[n].watched for n in node.inputs)
        vertices[node.name] = Vertex(
            node.name, "op", op, node.inputs, node.symbol, node.label, per_sample, watched
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


def constant_symbols(loss: Loss) -> dict[str, sp.Expr]:
    """The loss's constants as exact SymPy numbers, by node name."""
    return {name: sp.Rational(v.numerator, v.denominator) for name, v in loss.constants}


def _leaf_symbols(symbolic: Symbolic) -> dict[str, sp.Expr]:
    return {
        **symbolic.parameters,
        **data_leaves(symbolic.model),
        **constant_symbols(symbolic.loss_definition),
    }


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
    dummies = sp.symbols(f"a0:{len(operands)}", real=True)  # real: d|a|/da = sign(a)
    derivative = sp.diff(op.forward(*dummies), dummies[position])
    return derivative.xreplace(dict(zip(dummies, operands, strict=True)))


def derive_adjoints(graph: Sequence[Vertex], symbolic: Symbolic) -> SymbolicBackward:
    """Reverse mode: dL/dL = 1, then each op passes upstream * local derivative to its inputs."""
    symbols = _leaf_symbols(symbolic) | {
        v.name: sp.Symbol(f"node_{v.name}", real=True) for v in op_vertices(graph)
    }
    vertices = {v.name: v for v in graph}
    output = graph[-1].name
    adjoints: dict[str, sp.Expr] = {output: sp.Integer(1)}
    locals_: dict[tuple[str, str], sp.Expr] = {}
    broadcast: set[str] = set()
    summed: dict[str, set[bool]] = {}
    for consumer in reversed(op_vertices(graph)):
        assert consumer.op is not None
        if not consumer.watched:
            continue  # computed from the data alone: nothing flows back through it
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
    """SymPy proves expr == 0 (branch by branch where there are branches)."""
    return proved_zero(expr)


def direct_adjoint(backward: SymbolicBackward, symbolic: Symbolic, name: str) -> sp.Expr:
    """dL/d(node_i) without the chain rule: differentiate the loss for the node's value."""
    if name == backward.output:
        return sp.Integer(1)
    t = sp.Symbol("t", real=True)  # real, as the node it stands for
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
