"""Logistic regression's derivative, step by named step: binary cross-entropy through sigma.

    L = 1/n sum_i l_i,  l_i = -[y_i log p_i + (1 - y_i) log(1 - p_i)],  p_i = sigma(z_i)

with z_i the model's logit. The steps a learner takes, each checked by SymPy: the chain
rule through log and sigma, the derivative of the log, sigma' = sigma (1 - sigma), and
the simplification to (sigma(z_i) - y_i) dz_i/dtheta. sigma stays one symbol in print
(:class:`Sigmoid`); the checks do not trust its derivative: every step is rewritten
with sigma(z) = 1 / (1 + e^-z) and compared with SymPy's own derivative of the
definition written that way, term by term (each step is 1/n times a sum over the same
i, so equal terms make equal sums).
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from ..common.i18n import Message
from .printing import latex
from .proof import is_zero
from .steps import Derivation, Formula, Step
from .symbols import Y_I, I, N

P = sp.Symbol("p", real=True)  # a probability, the argument of the log terms
Z = sp.Symbol("z", real=True)  # a logit, the argument of sigma


class Sigmoid(sp.Function):
    """sigma(z) = 1 / (1 + e^-z), printed as one symbol; its derivative sigma (1 - sigma)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, z: sp.Expr, **_: Any) -> sp.Expr:
        return 1 / (1 + sp.exp(-z))

    def _latex(self, printer: Any) -> str:
        return r"\sigma\left(" + printer._print(self.args[0]) + r"\right)"


def cross_entropy(p: sp.Expr, y: sp.Expr = Y_I) -> sp.Expr:
    """One sample's binary cross-entropy of a probability p for a label y."""
    return -(y * sp.log(p) + (1 - y) * sp.log(1 - p))


def _mean_of(summand: sp.Expr) -> sp.Expr:
    return sp.Mul(sp.Pow(N, -1), sp.Sum(summand, (I, 1, N)), evaluate=False)


def _exp_form(expr: sp.Expr) -> sp.Expr:
    """Derivatives and substitutions carried out, sigma written with exp."""
    done = expr.replace(
        lambda e: isinstance(e, (sp.Derivative, sp.Subs)), lambda e: e.doit()
    ).doit()
    return done.rewrite(sp.exp)


def same_term(step: sp.Expr, target: sp.Expr) -> bool:
    """SymPy proves the step's term equal to the target's, sigma written with exp."""
    return is_zero(sp.together(_exp_form(step) - _exp_form(target)))


def derive_logistic(name: str, symbol: sp.Symbol, logit: sp.Expr) -> Derivation:
    """dL/d(symbol) for the mean cross-entropy of sigma(logit), where logit is z_i in
    the parameters and sample i's features."""
    z = logit
    sigma = Sigmoid(z)
    per_sample = cross_entropy(sigma)
    # SymPy's own derivative of one term, sigma as exp: what every step must equal
    target = sp.diff(cross_entropy(1 / (1 + sp.exp(-z))), symbol)
    dz = sp.diff(z, symbol)
    sigma_prime = sigma * (1 - sigma)
    outer = sp.diff(cross_entropy(P), P)  # -y/p + (1 - y)/(1 - p)
    at_sigma = outer.subs(P, sigma)

    def product(*factors: sp.Expr) -> sp.Expr:
        """Unevaluated, so that each factor prints where the step puts it; a factor
        1 (dz/db) is left out rather than printed."""
        kept = [f for f in factors if f != 1]
        return kept[0] if len(kept) == 1 else sp.Mul(*kept, evaluate=False)

    chain = product(
        sp.Subs(sp.Derivative(cross_entropy(P), P), P, sigma),
        sp.Subs(sp.Derivative(Sigmoid(Z), Z), Z, z),
        sp.Derivative(z, symbol),
    )
    candidates: list[tuple[str, Message, sp.Expr, str, sp.Expr]] = [
        # (rule, explanation, the step's expression, the note beside it, its term)
        (
            "definition",
            Message.of("explain.definition", parameter=name),
            sp.Derivative(_mean_of(per_sample), symbol),
            "",
            sp.Derivative(per_sample, symbol),
        ),
        (
            "linearity of the mean",
            Message.of("explain.linearity_of_the_mean"),
            _mean_of(sp.Derivative(per_sample, symbol)),
            "",
            sp.Derivative(per_sample, symbol),
        ),
        (
            "chain rule through log and sigmoid",
            Message.of("explain.chain_rule_logistic"),
            _mean_of(chain),
            r"\frac{\partial \ell_{i}}{\partial \theta} = \frac{\partial \ell}{\partial p}"
            r"\Big|_{p = \sigma(z_{i})} \, \sigma'(z_{i}) \,"
            r" \frac{\partial z_{i}}{\partial \theta}",
            chain,
        ),
        (
            "derivative of the log",
            Message.of("explain.derivative_of_log"),
            _mean_of(product(at_sigma, sp.Subs(sp.Derivative(Sigmoid(Z), Z), Z, z), dz)),
            r"\frac{\partial \ell}{\partial p} = -\frac{y}{p} + \frac{1 - y}{1 - p}",
            product(at_sigma, sp.Subs(sp.Derivative(Sigmoid(Z), Z), Z, z), dz),
        ),
        (
            "derivative of the sigmoid",
            Message.of("explain.derivative_of_sigmoid"),
            _mean_of(product(at_sigma, sigma_prime, dz)),
            r"\sigma'(z) = \sigma(z) \left(1 - \sigma(z)\right)",
            product(at_sigma, sigma_prime, dz),
        ),
        (
            "simplification",
            Message.of("explain.logistic_simplification"),
            _mean_of(product(sigma - Y_I, dz)),
            r"\left(-\frac{y}{\sigma} + \frac{1 - y}{1 - \sigma}\right) \sigma (1 - \sigma)"
            r" = -y (1 - \sigma) + (1 - y) \sigma = \sigma - y",
            product(sigma - Y_I, dz),
        ),
    ]
    result = Formula(coefficient=sp.Pow(N, -1), summand=sp.Mul(sigma - Y_I, dz))
    candidates.append(
        (
            "derivative of the model",
            Message.of("explain.derivative_of_the_model", parameter=name),
            result.expression,
            r"\frac{\partial z_{i}}{\partial " + latex(symbol) + "} = " + latex(dz),
            result.summand,
        )
    )
    steps = tuple(
        Step(rule, explanation, expression, note, same_term(term, target))
        for rule, explanation, expression, note, term in candidates
    )
    return Derivation(parameter=name, symbol=symbol, steps=steps, result=result)
