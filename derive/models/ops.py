"""The operations a tape records, as definitions, and the nodes a model is built from.

An op's ``forward`` is plain arithmetic, so the same function works on SymPy
expressions and on exact Fractions. Its local derivatives are not written down
anywhere: :mod:`derive.report.backward` asks SymPy to differentiate ``forward``. The one
reduction, the mean, is marked as such; its local derivative is 1/n for every element.

A model or a loss lists its computation as :class:`Node` entries in the order the
original script executes them (see ``derive.models.registry``); a new model is a new list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..common.errors import InputError


def less_equal(a: Any, b: Any) -> Any:
    """a <= b element by element: a SymPy relation, a boolean array, or a bool; on the
    spreads of derive.exact.underflow, their ``compared`` (a flag is exact)."""
    if hasattr(a, "compared"):
        return a.compared()
    return a <= b


def select(condition: Any, chosen: Any, other: Any) -> Any:
    """`chosen` where `condition` holds, else `other`, element by element (SelectV2).

    On SymPy expressions a Piecewise; on the spreads of derive.exact.underflow (which
    know no sides) their ``either``; on arrays ``np.where``; on exact numbers the branch.
    """
    import numpy as np
    import sympy as sp

    if any(isinstance(v, sp.Basic) for v in (condition, chosen, other)):
        return sp.Piecewise((chosen, condition), (other, True))
    if hasattr(chosen, "either"):
        return chosen.either(other)
    if isinstance(condition, np.ndarray):
        return np.where(condition, chosen, other)
    return chosen if condition else other


def dot(*operands: Any) -> Any:
    """Row i of X times W: x_i1 W_1 + ... + x_ik W_k, from the operands
    (x_1, ..., x_k, W_1, ..., W_k), summed left to right."""
    half = len(operands) // 2
    total = operands[0] * operands[half]
    for a, b in zip(operands[1:half], operands[half + 1 :], strict=True):
        total = total + a * b
    return total


VARIADIC = -1  # an op that takes any even number of operands (MatMul: k columns, k weights)


WRITTEN_OUT_TERMS = 6  # from this many products on, a dot product is written with a cdots


@dataclass(frozen=True)
class Op:
    """out = forward(operands), element by element over the samples (unless `reduces`)."""

    name: str
    tf_type: str  # the op type TensorFlow records for it
    arity: int  # the number of operands, or VARIADIC
    forward: Callable[..., Any]
    notation: str  # LaTeX, with {0}, {1} for the operands' symbols
    rule: str  # the local rule the tape applies, in words
    reduces: bool = False  # a mean over the samples: each element gets 1/n of the upstream
    # A comparison: its output is a flag, and TensorFlow passes no gradient through it
    differentiable: bool = True
    # The op types TensorFlow records for it, where it is several (Keras's mean of an
    # (n, 1) loss: Mean, Sum, Prod, Cast, DivNoNan); empty: just tf_type
    tf_types: tuple[str, ...] = ()

    @property
    def recorded(self) -> tuple[str, ...]:
        return self.tf_types or (self.tf_type,)

    def written(self, operands: list[str]) -> str:
        """The op applied to its operands' LaTeX: MatMul's row i of X times W written out
        as W_1 x_{i,1} + ... + W_k x_{i,k} (from six features on with a \\cdots)."""
        if self.arity == VARIADIC:
            half = len(operands) // 2
            terms = [f"{w} {x}" for x, w in zip(operands[:half], operands[half:], strict=True)]
            if len(terms) >= WRITTEN_OUT_TERMS:  # the whole sum would run past the page
                terms = [*terms[:2], r"\cdots", terms[-1]]
            return " + ".join(terms)
        return self.notation.format(*operands)

    def takes(self, count: int) -> bool:
        """Whether the op takes `count` operands."""
        if self.arity == VARIADIC:
            return count >= 2 and count % 2 == 0
        return count == self.arity


MEAN = Op(
    "mean",
    "Mean",
    1,
    lambda terms: sum(terms) / len(terms),
    r"\frac{{1}}{{n}} \sum_{{i=1}}^{{n}} {0}",
    "each element receives 1/n of the upstream adjoint",
    reduces=True,
)

OPS: Mapping[str, Op] = {
    "multiply": Op(
        "multiply",
        "Mul",
        2,
        lambda a, b: a * b,
        "{0} {1}",
        "each input receives the upstream adjoint times the other input",
    ),
    "add": Op(
        "add",
        "AddV2",
        2,
        lambda a, b: a + b,
        "{0} + {1}",
        "the upstream adjoint passes through to both inputs",
    ),
    "subtract": Op(
        "subtract",
        "Sub",
        2,
        lambda a, b: a - b,
        "{0} - {1}",
        "the upstream adjoint passes through, with a minus sign to the second input",
    ),
    "square": Op(
        "square",
        "Square",
        1,
        lambda a: a**2,
        r"\left({0}\right)^{{2}}",
        "the input receives 2 times the input times the upstream adjoint",
    ),
    "abs": Op(
        "abs",
        "Abs",
        1,
        # abs() works on Fractions and on SymPy expressions alike (SymPy's Abs, whose
        # derivative for a real argument is sign, with sign(0) = 0 as TensorFlow's)
        lambda a: abs(a),
        r"\left|{0}\right|",
        "the input receives the upstream adjoint times sign(input), with sign(0) = 0",
    ),
    "less_equal": Op(
        "less_equal",
        "LessEqual",
        2,
        less_equal,
        r"\left[{0} \le {1}\right]",
        "a comparison: no gradient passes through it",
        differentiable=False,
    ),
    "select": Op(
        "select",
        "SelectV2",
        3,
        select,
        r"\begin{{cases}} {1} & {0} \\ {2} & \lnot {0} \end{{cases}}",
        "the upstream adjoint goes to the branch the sample's flag chose; the other gets 0",
    ),
    "matmul": Op(
        "matmul",
        "MatMul",
        VARIADIC,
        dot,
        "",  # written out by Op.written: one product per feature
        "each W_j receives the sum over the samples of x_ij times the upstream adjoint "
        "(X^T times the upstream column); X is data and receives nothing",
    ),
    "mean": MEAN,
    # A Keras loss on (n, 1) predictions: the mean over the last axis (one value: exact),
    # then the sum over the batch divided by its size. The mean's arithmetic (the sum,
    # then one division by n; its gradient the upstream divided by n), other recorded ops.
    "batch_mean": replace(
        MEAN,
        name="batch_mean",
        tf_type="Sum/DivNoNan",
        tf_types=("Mean", "Sum", "Prod", "Cast", "DivNoNan"),
    ),
}


@dataclass(frozen=True)
class Node:
    """One tensor the tape records: ``name = op(inputs)``.

    `inputs` name earlier nodes, the model's parameters, the data ``x`` and ``y``, or
    the loss's constants (Huber's delta and 1/2: scalars the tape does not watch).
    `symbol` is its value for sample i in LaTeX (with ``_{i}``; none for scalars),
    `label` the same in plain text for the graph drawing. `tf_inputs` name the tensors
    the tape's op reads, where they are not the scalar inputs one by one: MatMul reads
    the whole (n, k) matrix x and the (k, 1) kernel W.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    symbol: str
    label: str
    tf_inputs: tuple[str, ...] = ()

    @property
    def tensor_inputs(self) -> tuple[str, ...]:
        return self.tf_inputs or self.inputs


def get_op(name: str) -> Op:
    try:
        return OPS[name]
    except KeyError:
        raise InputError("unknown operation", name) from None
