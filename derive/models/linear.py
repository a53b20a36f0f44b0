"""Linear regression: W x + b on one feature, as the reference script writes it, and
``tf.matmul(X, W) + b`` with a (k, 1) kernel W on several."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import cache
from typing import TYPE_CHECKING, Any

from .entries import Model, OriginalUnits, feature_names
from .ops import Node

if TYPE_CHECKING:
    import sympy as sp


def kernel_names(k: int) -> tuple[str, ...]:
    """The parameters of a (k, 1) kernel W: W for one feature, else W_1 ... W_k."""
    return ("W",) if k == 1 else tuple(f"W_{j}" for j in range(1, k + 1))


def _tf_linear(tf: Any, params: Mapping[str, Any], x: Any) -> Any:
    return params["W"] * x + params["b"]


def _tf_matmul(tf: Any, params: Mapping[str, Any], x: Any) -> Any:
    # x is (n, k) and W (k, 1): the product is (n, 1), as a Dense(1) layer's kernel gives
    return tf.matmul(x, params["W"]) + params["b"]


def _line_in_original_units(
    parameters: Mapping[str, Fraction],
    mu_x: Sequence[Fraction],
    sigma_x: Sequence[Fraction],
    mu_y: Fraction,
    sigma_y: Fraction,
) -> dict[str, Fraction]:
    """y ~ mu_y + sigma_y (sum_j W_j (x_j - mu_j) / sigma_j + b)
    = sum_j V_j x_j + (mu_y + sigma_y b - sum_j V_j mu_j), with V_j = W_j sigma_y / sigma_j."""
    names = kernel_names(len(mu_x))
    weights = {
        name: parameters[name] * sigma_y / sigma for name, sigma in zip(names, sigma_x, strict=True)
    }
    shift = sum((w * mu for w, mu in zip(weights.values(), mu_x, strict=True)), Fraction(0))
    return {**weights, "b": mu_y + sigma_y * parameters["b"] - shift}


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


def _several_in_original_units(k: int) -> OriginalUnits:
    weights = kernel_names(k)
    return OriginalUnits(
        derivation=(
            r"\hat{y} = \mu_{y} + \sigma_{y} \left(\sum_{j} W_{j} \, "
            r"\frac{x_{j} - \mu_{j}}{\sigma_{j}} + b\right)"
            r" = \sum_{j} W_{j,\mathrm{orig}} \, x_{j} + b_{\mathrm{orig}}"
        ),
        formulas=(
            r"W_{j,\mathrm{orig}} = W_{j} \, \frac{\sigma_{y}}{\sigma_{j}}",
            r"b_{\mathrm{orig}} = \mu_{y} + \sigma_{y} \, b - "
            r"\sum_{j} W_{j,\mathrm{orig}} \, \mu_{j}",
        ),
        convert=_line_in_original_units,
        symbols=(
            *((w, rf"W_{{{j},\mathrm{{orig}}}}") for j, w in enumerate(weights, start=1)),
            ("b", r"b_{\mathrm{orig}}"),
        ),
        prediction=lambda p: (
            r"\hat{y} = "
            + " + ".join(rf"{p[w]} x_{{{j}}}" for j, w in enumerate(weights, start=1))
            + f" + {p['b']}"
        ),
    )


@cache
def linear_features(k: int) -> Model:
    """Linear regression on k >= 2 features as a learner writes it with a kernel W of
    shape (k, 1), a Dense(1) layer's: ``tf.matmul(X, W) + b``. One entry per k."""
    weights = kernel_names(k)
    data = feature_names(k)

    def prediction(p: Mapping[str, sp.Symbol], x: Sequence[sp.Expr]) -> sp.Expr:
        return sum((p[w] * xj for w, xj in zip(weights, x, strict=True)), p["b"])

    return Model(
        name="linear",
        title="linear regression",
        parameters=(*weights, "b"),
        prediction=prediction,
        tf_prediction=_tf_matmul,
        graph=(
            # MatMul reads the whole of X and W; its value for sample i is the dot product
            # of row i with W, and each W_j's adjoint is column j of X^T times the upstream
            Node("XW", "matmul", (*data, *weights), r"\left(X W\right)_{i}", "X·W", ("x", "W")),
            Node("prediction", "add", ("XW", "b"), r"\hat{y}_{i}", "ŷ"),
        ),
        original_units=_several_in_original_units(k),
        features=k,
        variables=(("W", weights), ("b", ("b",))),
    )
