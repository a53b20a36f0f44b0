"""What a registered model or loss is: the definitions every stage reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .ops import Node

if TYPE_CHECKING:  # building the definitions needs no SymPy: the tape's process never loads it
    import sympy as sp


def feature_names(k: int) -> tuple[str, ...]:
    """The graph's leaves for k >= 2 feature columns: x_1 ... x_k."""
    return tuple(f"x_{j}" for j in range(1, k + 1))


@dataclass(frozen=True)
class OriginalUnits:
    """A capability: how parameters fitted on z-scores (z = (v - mu) / sigma for x and
    for y) read in the data's own units. Without it a model cannot train on z-scores."""

    derivation: str  # LaTeX: the prediction on z-scores rewritten in the original units
    formulas: tuple[str, ...]  # LaTeX: each parameter in the original units
    # (parameters on z-scores, mu_x and sigma_x (one per feature), mu_y, sigma_y)
    # -> parameters in the original units, exactly
    convert: Callable[..., Mapping[str, Fraction]]
    # LaTeX of each parameter in the original units, by name (W -> W_orig)
    symbols: tuple[tuple[str, str], ...]
    # LaTeX of the prediction in the original units, from each parameter's LaTeX by name
    # (the fitted numbers): for the line, (W, b) -> \hat{y} = W x + b
    prediction: Callable[[Mapping[str, str]], str]


@dataclass(frozen=True)
class Model:
    """A per-sample prediction y_hat_i = f(parameters, x_i1, ..., x_ik)."""

    name: str
    title: str
    parameters: tuple[str, ...]
    # SymPy: (parameter symbols by name, the sample's features (x_i1, ..., x_ik)) -> y_hat_i
    prediction: Callable[[Mapping[str, sp.Symbol], Sequence[sp.Expr]], sp.Expr]
    # TensorFlow: (tf, variables by name, x tensor) -> predictions, in the reference script's
    # op order; the tape hands in the TensorFlow module, so that only derive/tape imports it
    tf_prediction: Callable[[Any, Mapping[str, Any], Any], Any]
    # The same computation as the tape records it, op by op, ending in "prediction"
    graph: tuple[Node, ...] = ()
    original_units: OriginalUnits | None = None  # capability: see OriginalUnits
    features: int = 1  # k, the number of feature columns
    # The tape's variables, each with the parameters it holds in order: a (k, 1) kernel
    # W holds W_1 ... W_k. Empty: one scalar variable per parameter, of its name.
    variables: tuple[tuple[str, tuple[str, ...]], ...] = ()
    task: str = "regression"  # "classification": its losses are those of that task

    @property
    def variable_parameters(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return self.variables or tuple((name, (name,)) for name in self.parameters)

    @property
    def data(self) -> tuple[str, ...]:
        """The names of the feature leaves of the graph: x, or x_1 ... x_k."""
        return ("x",) if self.features == 1 else feature_names(self.features)


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
    # A loss that is no function of one residual (binary cross-entropy on a logit):
    # (prediction, y) -> the per-sample loss; None: outer(inner(prediction, y))
    per_sample: Callable[[sp.Expr, sp.Expr], sp.Expr] | None = None
    # The name of its own derivation (derive.symbolic.derivation.DERIVATIONS), where the
    # chain rule through one residual does not describe it; None: that chain rule
    derivation: str | None = None
    labels: str = "real"  # "binary": every y must be 0 or 1
    task: str = "regression"  # a loss serves only the models of its task

    @property
    def constant_values(self) -> dict[str, Fraction]:
        return dict(self.constants)
