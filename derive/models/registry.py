"""Models and losses as definitions: a SymPy expression and the TensorFlow ops that match it.

A new model or loss is a new entry here, not a new code path: the derivation, the
tape, the checks and the templates read these definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import TYPE_CHECKING, Any

from ..common.errors import InputError
from .ops import Node

if TYPE_CHECKING:  # building the definitions needs no SymPy: the tape's process never loads it
    import sympy as sp


@dataclass(frozen=True)
class OriginalUnits:
    """A capability: how parameters fitted on z-scores (z = (v - mu) / sigma for x and
    for y) read in the data's own units. Without it a model cannot train on z-scores."""

    derivation: str  # LaTeX: the prediction on z-scores rewritten in the original units
    formulas: tuple[str, ...]  # LaTeX: each parameter in the original units
    # (parameters on z-scores, mu_x, sigma_x, mu_y, sigma_y) -> parameters, exactly
    convert: Callable[..., Mapping[str, Fraction]]
    # LaTeX of each parameter in the original units, by name (W -> W_orig)
    symbols: tuple[tuple[str, str], ...]
    # LaTeX of the prediction in the original units, from each parameter's LaTeX by name
    # (the fitted numbers): for the line, (W, b) -> \hat{y} = W x + b
    prediction: Callable[[Mapping[str, str]], str]


@dataclass(frozen=True)
class Model:
    """A per-sample prediction y_hat_i = f(parameters, x_i)."""

    name: str
    title: str
    parameters: tuple[str, ...]
    # SymPy: (parameter symbols by name, x_i) -> y_hat_i
    prediction: Callable[[Mapping[str, sp.Symbol], sp.Expr], sp.Expr]
    # TensorFlow: (tf, variables by name, x tensor) -> predictions, in the reference script's
    # op order; the tape hands in the TensorFlow module, so that only derive/tape imports it
    tf_prediction: Callable[[Any, Mapping[str, Any], Any], Any]
    # The same computation as the tape records it, op by op, ending in "prediction"
    graph: tuple[Node, ...] = ()
    original_units: OriginalUnits | None = None  # capability: see OriginalUnits


@dataclass(frozen=True)
class Loss:
    """A mean over samples of outer(inner(y_hat_i, y_i))."""

    name: str
    title: str
    inner: Callable[[sp.Expr, sp.Expr], sp.Expr]  # (y_hat_i, y_i) -> u_i, the residual
    outer: Callable[[sp.Expr], sp.Expr]  # u -> per-sample loss
    outer_rule: str  # the name of the rule that differentiates `outer`
    outer_rule_formula: str  # that rule as LaTeX, shown beside the step
    tf_loss: Callable[[Any, Any, Any], Any]  # (tf, y_pred, y_true) -> scalar tensor
    # The same computation op by op, from "prediction" and "y" to the scalar loss
    graph: tuple[Node, ...] = ()
    # What bounds the learning rate (a capability): "hessian", the Hessian of the loss
    # gives 2/lambda_max (a loss twice differentiable in the parameters); "none", no
    # curvature at all (|r|: piecewise linear)
    curvature: str = "hessian"
    # The classic mistakes a learner makes with this loss, by the names of
    # derive.symbolic.derivation.WRONG_FORMULAS: --wrong-derivative offers these
    wrong_derivatives: tuple[str, ...] = ("drop-factor-2", "drop-mean", "x-for-y")
    # The per-sample loss on NumPy arrays of residuals, for the plots of a loss that is
    # no polynomial in the parameters; None: the plots use the polynomial
    numeric: Callable[[Any], Any] | None = None
    # Catalogue keys: the sentence that introduces the loss (section 1), and what the
    # derivation must add about the loss's kinks (None: it has none)
    # Values of the residual where outer' jumps (|u| at 0): the tape decides the side on
    # its rounded residual, derive.exact.kinks makes a check that cannot tell inconclusive
    kinks: tuple[int, ...] = ()
    # Values of the residual where a branch switches (SelectV2) while outer' stays
    # continuous (Huber's +-delta): the gradients do not jump there, but the adjoints of
    # the branches' own nodes do, and the backward section watches them as it does kinks
    switches: tuple[Fraction, ...] = ()
    sentence: str = "problem.model_and_loss"
    derivation_note: str | None = None
    handout_keys: str = ""  # suffix of the handouts' catalogue keys that name the loss
    bound_text: str = "checks.bound"  # catalogue key: how k is counted for this loss
    # Scalars the loss's graph uses besides the data (Huber's delta and 1/2), by node name,
    # as the exact values the tape holds (rounded to its dtype): leaves the tape does not watch
    constants: tuple[tuple[str, Fraction], ...] = ()
    # For curvature "bounded": a loss whose Hessian is everywhere at least this one's
    # (Huber's: r^2 / 2, its quadratic branch), so that its 2/lambda_max is a safe rate
    curvature_bound: Loss | None = None
    # Catalogue fields of the loss's own words ({delta} for Huber), as LaTeX
    words: tuple[tuple[str, str], ...] = ()

    @property
    def constant_values(self) -> dict[str, Fraction]:
        return dict(self.constants)


def _tf_linear(tf: Any, params: Mapping[str, Any], x: Any) -> Any:
    return params["W"] * x + params["b"]


def _line_in_original_units(
    parameters: Mapping[str, Fraction],
    mu_x: Fraction,
    sigma_x: Fraction,
    mu_y: Fraction,
    sigma_y: Fraction,
) -> dict[str, Fraction]:
    """y ~ mu_y + sigma_y (W (x - mu_x) / sigma_x + b)
    = (W sigma_y / sigma_x) x + (mu_y + sigma_y b - (W sigma_y / sigma_x) mu_x)."""
    w_orig = parameters["W"] * sigma_y / sigma_x
    return {"W": w_orig, "b": mu_y + sigma_y * parameters["b"] - w_orig * mu_x}


LINE_IN_ORIGINAL_UNITS = OriginalUnits(
    derivation=(
        r"\hat{y} = \mu_{y} + \sigma_{y} \left(W \, \frac{x - \mu_{x}}{\sigma_{x}} + b\right)"
        r" = W_{\mathrm{orig}} \, x + b_{\mathrm{orig}}"
    ),
    formulas=(
        r"W_{\mathrm{orig}} = W \, \frac{\sigma_{y}}{\sigma_{x}}",
        r"b_{\mathrm{orig}} = \mu_{y} + \sigma_{y} \, b - W_{\mathrm{orig}} \, \mu_{x}",
    ),
    convert=_line_in_original_units,
    symbols=(("W", r"W_{\mathrm{orig}}"), ("b", r"b_{\mathrm{orig}}")),
    prediction=lambda p: rf"\hat{{y}} = {p['W']} x + {p['b']}",
)


def _tf_mse(tf: Any, y_pred: Any, y_true: Any) -> Any:
    return tf.reduce_mean(tf.square(y_pred - y_true))


def _tf_mae(tf: Any, y_pred: Any, y_true: Any) -> Any:
    return tf.reduce_mean(tf.abs(y_pred - y_true))


def _tf_huber(delta: float) -> Callable[[Any, Any, Any], Any]:
    def loss(tf: Any, y_pred: Any, y_true: Any) -> Any:
        return tf.keras.losses.Huber(delta)(y_true, y_pred)

    return loss


def _half_square(u: sp.Expr) -> sp.Expr:
    return u**2 / 2


HALF_DELTA_SQUARED = r"\frac{\delta^{2}}{2}"


@cache
def huber(delta: Fraction) -> Loss:
    """The Huber loss with threshold `delta` (the value the tape holds: rounded to its
    dtype), as ``tf.keras.losses.Huber(delta)`` computes it: 1/2 r^2 where |r| <= delta,
    delta |r| - 1/2 delta^2 elsewhere. One entry per delta (cached: the stages cache by
    entry, and two equal deltas must share one)."""
    half = Fraction(1, 2)

    def outer(u: sp.Expr) -> sp.Expr:
        import sympy as sp  # here, not above: the tape's process builds entries too

        d = sp.Rational(delta.numerator, delta.denominator)
        return sp.Piecewise((u**2 / 2, abs(u) <= d), (d * abs(u) - d**2 / 2, True))

    def numeric(residuals: Any) -> Any:
        import numpy as np

        size = np.abs(residuals)
        value = float(delta)
        return np.where(size <= value, residuals**2 / 2, value * size - value**2 / 2)

    return Loss(
        name="huber",
        title="Huber loss",
        inner=lambda y_hat, y: y_hat - y,
        outer=outer,
        outer_rule="derivative of the Huber function",
        outer_rule_formula=(
            r"\frac{d}{du} h_{\delta}(u) = \begin{cases} u & \left|u\right| \le \delta \\ "
            r"\delta \operatorname{sign}(u) & \left|u\right| > \delta \end{cases}"
        ),
        tf_loss=_tf_huber(float(delta)),
        # Keras's own ops, in the order it runs them (Sub, Abs, LessEqual, Square, Mul,
        # Mul, Square, Mul, Sub, SelectV2, Mean): 1/2 delta^2 is computed on the tape too
        graph=(
            Node("residual", "subtract", ("prediction", "y"), "r_{i}", "r"),
            Node("abs", "abs", ("residual",), r"\left|r_{i}\right|", "|r|"),
            Node("inside", "less_equal", ("abs", "delta"), r"c_{i}", "|r| ≤ δ"),
            Node("square", "square", ("residual",), "r_{i}^{2}", "r²"),
            Node("quadratic", "multiply", ("half", "square"), r"q_{i}", "½r²"),
            Node("scaled", "multiply", ("delta", "abs"), r"s_{i}", "δ|r|"),
            Node("delta_squared", "square", ("delta",), r"\delta^{2}", "δ²"),
            Node("offset", "multiply", ("half", "delta_squared"), HALF_DELTA_SQUARED, "½δ²"),
            Node("linear", "subtract", ("scaled", "offset"), r"l_{i}", "δ|r| - ½δ²"),
            Node("huber", "select", ("inside", "quadratic", "linear"), r"h_{i}", "h"),
            Node("loss", "mean", ("huber",), "L", "L"),
        ),
        curvature="bounded",
        wrong_derivatives=("r-for-sign", "flip-sign", "drop-mean", "x-for-y"),
        numeric=numeric,
        sentence="problem.model_and_loss_huber",
        handout_keys="_huber",
        derivation_note="explain.huber_branches",
        bound_text="checks.bound_huber",
        constants=(("delta", delta), ("half", half)),
        switches=(delta, -delta),
        curvature_bound=HALF_SQUARE,
        # delta as the shortest decimal that reads back as the tape's value
        words=(("delta", repr(float(delta))),),
    )


# The quadratic branch of the Huber loss on every sample: not offered on the command
# line, but its Hessian bounds the Huber loss's everywhere (see Loss.curvature_bound)
HALF_SQUARE = Loss(
    name="half-square",
    title="half the mean squared error",
    inner=lambda y_hat, y: y_hat - y,
    outer=_half_square,
    outer_rule="power rule",
    outer_rule_formula=r"\frac{d}{du} \frac{u^{2}}{2} = u",
    tf_loss=lambda tf, y_pred, y_true: tf.reduce_mean(tf.square(y_pred - y_true)) / 2,
)

DEFAULT_HUBER_DELTA = Fraction(1)  # as tf.keras.losses.Huber


MODELS: Mapping[str, Model] = {
    "linear": Model(
        name="linear",
        title="linear regression",
        parameters=("W", "b"),
        prediction=lambda p, x: p["W"] * x + p["b"],
        tf_prediction=_tf_linear,
        graph=(
            Node("Wx", "multiply", ("W", "x"), r"\left(W x\right)_{i}", "W·x"),
            Node("prediction", "add", ("Wx", "b"), r"\hat{y}_{i}", "ŷ"),
        ),
        original_units=LINE_IN_ORIGINAL_UNITS,
    ),
}

LOSSES: Mapping[str, Loss] = {
    "mse": Loss(
        name="mse",
        title="mean squared error",
        inner=lambda y_hat, y: y_hat - y,
        outer=lambda u: u**2,
        outer_rule="power rule",
        outer_rule_formula=r"\frac{d}{du} u^{2} = 2 u",
        tf_loss=_tf_mse,
        graph=(
            Node("residual", "subtract", ("prediction", "y"), "r_{i}", "r"),
            Node("square", "square", ("residual",), "r_{i}^{2}", "r²"),
            Node("loss", "mean", ("square",), "L", "L"),
        ),
    ),
    "mae": Loss(
        name="mae",
        title="mean absolute error",
        inner=lambda y_hat, y: y_hat - y,
        outer=abs,  # SymPy's Abs on the (real) residual; its derivative is sign
        outer_rule="derivative of the absolute value",
        outer_rule_formula=r"\frac{d}{du} \left|u\right| = \operatorname{sign}(u)",
        tf_loss=_tf_mae,
        graph=(
            Node("residual", "subtract", ("prediction", "y"), "r_{i}", "r"),
            Node("abs", "abs", ("residual",), r"\left|r_{i}\right|", "|r|"),
            Node("loss", "mean", ("abs",), "L", "L"),
        ),
        curvature="none",
        wrong_derivatives=("r-for-sign", "flip-sign", "drop-mean", "x-for-y"),
        numeric=abs,
        kinks=(0,),
        sentence="problem.model_and_loss_mae",
        derivation_note="explain.sign_convention",
        handout_keys="_mae",
        bound_text="checks.bound_mae",
    ),
}


# What a Problem uses when the caller names no model or loss: the reference script's.
# The one place these names are spelled out; every stage below reads the Problem's entries.
DEFAULT_MODEL = "linear"
DEFAULT_LOSS = "mse"


def get_model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise InputError("unknown model", name) from None


LOSS_NAMES = (*LOSSES, "huber")  # huber: one entry per delta, made by huber()


def get_loss(name: str, huber_delta: Fraction | None = None) -> Loss:
    """The loss entry by name; Huber's for `huber_delta` (default 1, as Keras)."""
    if name == "huber":
        return huber(DEFAULT_HUBER_DELTA if huber_delta is None else huber_delta)
    try:
        return LOSSES[name]
    except KeyError:
        raise InputError("unknown --loss; choose " + ", ".join(LOSS_NAMES), name) from None
