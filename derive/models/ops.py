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
from dataclasses import dataclass
from typing import Any

from ..common.errors import InputError


@dataclass(frozen=True)
class Op:
    """out = forward(operands), element by element over the samples (unless `reduces`)."""

    name: str
    tf_type: str  # the op type TensorFlow records for it
    arity: int
    forward: Callable[..., Any]
    notation: str  # LaTeX, with {0}, {1} for the operands' symbols
    rule: str  # the local rule the tape applies, in words
    reduces: bool = False  # a mean over the samples: each element gets 1/n of the upstream


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
    "mean": Op(
        "mean",
        "Mean",
        1,
        lambda terms: sum(terms) / len(terms),
        r"\frac{{1}}{{n}} \sum_{{i=1}}^{{n}} {0}",
        "each element receives 1/n of the upstream adjoint",
        reduces=True,
    ),
}


@dataclass(frozen=True)
class Node:
    """One tensor the tape records: ``name = op(inputs)``.

    `inputs` name earlier nodes, the model's parameters, or the data ``x`` and ``y``.
    `symbol` is its value for sample i in LaTeX (with ``_{i}``; none for scalars),
    `label` the same in plain text for the graph drawing.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    symbol: str
    label: str


def get_op(name: str) -> Op:
    try:
        return OPS[name]
    except KeyError:
        raise InputError("unknown operation", name) from None
