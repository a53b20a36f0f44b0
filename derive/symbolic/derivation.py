"""SymPy: the loss for general n, its derivative as named steps, and exact evaluation.

Every step is an expression SymPy can evaluate; each one is checked equal to
``sympy.diff`` of the loss, so a step that drifts from the true derivative is caught
(:func:`verify_equal`). Printing to LaTeX is kept apart from the mathematics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cache

import sympy as sp

from ..common.errors import InputError
from ..common.i18n import Message
from ..models.registry import Loss, Model
from .absolute import absolute_form
from .compiled import compiled
from .logistic import Sigmoid, derive_logistic
from .printing import ReportLatexPrinter, latex
from .proof import is_zero
from .steps import Derivation, Formula, Step, bracket_sum, rule_key, shown_terms
from .symbols import X_I, Y_I, YS, I, N, U, X, Y, feature_symbols, plain_features

# Re-exported: the rest of derive imports the symbols and the printer from here
__all__ = [
    "X_I",
    "Y_I",
    "Derivation",
    "Formula",
    "I",
    "N",
    "ReportLatexPrinter",
    "Step",
    "U",
    "X",
    "Y",
    "absolute_form",
    "bracket_sum",
    "latex",
    "rule_key",
    "shown_terms",
]

WRONG_DERIVATIVES = {
    "drop-factor-2": "the factor 2 from the power rule is dropped",
    "drop-mean": "the factor 1/n from the mean is dropped",
    "x-for-y": "x_i is written where y_i belongs",
}
# The mistakes of the other losses (each loss entry names the kinds it offers)
WRONG_FORMULAS = {
    **WRONG_DERIVATIVES,
    "r-for-sign": "the residual r_i is written where sign(r_i) belongs",
    "flip-sign": "the sign is flipped: sign(y_i - y_hat_i) for sign(y_hat_i - y_i)",
    "forget-sigma": "the logit z_i is written where sigma(z_i) belongs: (z_i - y_i) x_i",
}


def _evaluate_derivatives(expr: sp.Expr) -> sp.Expr:
    """Carry out every Derivative and Subs, innermost first, leaving sums unevaluated."""
    return expr.replace(
        lambda e: isinstance(e, (sp.Derivative, sp.Subs)), lambda e: e.doit(deep=False)
    )


def _split_sums(expr: sp.Expr) -> sp.Expr:
    """Linearity of finite sums: each Sum becomes a combination of sums of monomials,
    with everything that does not depend on the index moved in front."""

    def split(total: sp.Sum) -> sp.Expr:
        parts = []
        for term in sp.Add.make_args(sp.expand(total.function)):
            constant, varying = term.as_independent(*total.variables, as_Add=False)
            inner = sp.Sum(varying, *total.limits)
            # A sum of 1 is its number of terms (n); other sums stay as they are.
            parts.append(constant * (inner.doit() if varying == 1 else inner))
        return sp.Add(*parts)

    return sp.expand(sp.expand(expr).replace(lambda e: isinstance(e, sp.Sum), split))


def verify_equal(a: sp.Expr, b: sp.Expr) -> bool:
    """True when SymPy proves a == b.

    First a quick proof: derivatives carried out, products expanded, sums split by
    linearity; if that leaves 0, a == b. Every rewrite is an identity, so the quick
    proof is as sound as the slow one. Otherwise ``simplify`` decides, with the
    derivatives evaluated and the sums left as sums (closed forms of sums with a
    symbolic bound are slow and not needed: simplify combines sums over the same range).
    """
    if _split_sums(_evaluate_derivatives(a) - _evaluate_derivatives(b)) == 0:
        return True

    def evaluated(expr: sp.Expr) -> sp.Expr:
        return expr.replace(
            lambda node: isinstance(node, (sp.Derivative, sp.Subs)), lambda node: node.doit()
        )

    return is_zero(sp.expand(evaluated(a) - evaluated(b)))


def verify_terms_equal(a: Formula, b: Formula, n: int, symbol: sp.Symbol) -> bool:
    """d/d(symbol) of b, written out for this n, equals a written out, shown term by term:
    sample k's term of a equals the derivative of sample k's term of b (their sums are
    then equal). For a Piecewise summand, whose written-out sum SymPy simplifies slowly."""
    left, right = a.coefficient.subs(N, n), b.coefficient.subs(N, n)
    return all(
        verify_equal(left * a.term(k), (right * b.term(k)).diff(symbol)) for k in range(1, n + 1)
    )


@dataclass(frozen=True)
class Symbolic:
    """The model and loss made symbolic: the loss, its derivations and per-sample pieces."""

    model: Model
    loss_definition: Loss
    parameters: Mapping[str, sp.Symbol]
    prediction: sp.Expr  # y_hat_i
    residual: sp.Expr  # u_i
    loss: Formula
    derivations: Mapping[str, Derivation]

    @property
    def features(self) -> tuple[sp.Expr, ...]:
        """Sample i's features: (x_i,), or (x_{i,1}, ..., x_{i,k})."""
        return feature_symbols(self.model.features)

    def sample_function(self, expr: sp.Expr) -> Callable[..., object]:
        """Compile expr(parameters, x_i1, ..., x_ik, y_i) to plain Python arithmetic.

        Plain arithmetic works on Fractions (exact) as well as on floats and arrays.
        Compiled once per expression (training checks ask again at every step).
        """
        plain_x = plain_features(self.model.features)
        plain = expr.xreplace({**dict(zip(self.features, plain_x, strict=True)), Y_I: YS})
        return compiled((*self.parameters.values(), *plain_x, YS), plain)


def _one_over_n() -> sp.Expr:
    return sp.Pow(N, -1)


def derive_parameter(
    name: str, symbol: sp.Symbol, prediction: sp.Expr, loss: Loss, shorthand: bool = False
) -> Derivation:
    """d/d(symbol) of (1/n) sum outer(inner(prediction_i, y_i)), step by named step;
    `shorthand`: written-out sums name the residual r_k (see Formula.shorthand)."""
    residual = loss.inner(prediction, Y_I)
    per_sample = loss.outer(residual)
    target = sp.diff(sp.Sum(per_sample, (I, 1, N)) / N, symbol)

    def mean_of(summand: sp.Expr) -> sp.Expr:
        return sp.Mul(_one_over_n(), sp.Sum(summand, (I, 1, N)), evaluate=False)

    outer_derivative = sp.diff(loss.outer(U), U)
    factor, rest = outer_derivative.as_coeff_Mul()
    # Keep the numeric factor outside the residual: 2 (W x_i + b - y_i), not 2 W x_i + 2 b - ...
    outer_at_residual = (
        rest.subs(U, residual)  # no factor to keep apart: sign(r_i), not 1 sign(r_i)
        if factor == 1
        else sp.Mul(factor, rest.subs(U, residual), evaluate=False)
    )
    inner_derivative = sp.diff(residual, symbol)
    model_derivative = sp.diff(prediction, symbol)

    y_hat = sp.Symbol(r"\hat{y}_{i}")
    candidates = [
        (
            "definition",
            Message.of("explain.definition", parameter=name),
            sp.Derivative(mean_of(per_sample), symbol),
            "",
        ),
        (
            "linearity of the mean",
            Message.of("explain.linearity_of_the_mean"),
            mean_of(sp.Derivative(per_sample, symbol)),
            r"\frac{\partial}{\partial " + latex(symbol) + r"} \frac{1}{n}\sum_{i} f_{i} = "
            r"\frac{1}{n}\sum_{i} \frac{\partial f_{i}}{\partial " + latex(symbol) + "}",
        ),
        (
            "chain rule",
            Message.of("explain.chain_rule"),
            mean_of(
                sp.Mul(
                    sp.Subs(sp.Derivative(loss.outer(U), U), U, residual),
                    sp.Derivative(residual, symbol),
                    evaluate=False,
                )
            ),
            r"\frac{\partial f(u_{i})}{\partial " + latex(symbol) + r"} = f'(u_{i}) "
            r"\frac{\partial u_{i}}{\partial " + latex(symbol) + "}",
        ),
        (
            loss.outer_rule,
            Message.of("explain.outer_function"),
            mean_of(sp.Mul(outer_at_residual, sp.Derivative(residual, symbol), evaluate=False)),
            loss.outer_rule_formula,
        ),
        (
            "derivative of the model",
            Message.of("explain.derivative_of_the_model", parameter=name),
            # A factor 1 is left out rather than printed as a bare "1".
            mean_of(
                outer_at_residual
                if inner_derivative == 1
                else sp.Mul(outer_at_residual, inner_derivative, evaluate=False)
            ),
            r"\frac{\partial "
            + latex(y_hat)
            + r"}{\partial "
            + latex(symbol)
            + "} = "
            + latex(model_derivative),
        ),
    ]
    result = Formula(
        coefficient=factor * _one_over_n(),
        summand=sp.Mul(rest.subs(U, residual), inner_derivative),
        shorthand=residual if shorthand else None,
    )
    candidates.append(
        (
            "constant factor",
            Message.of("explain.constant_factor"),
            result.expression,
            "",
        )
    )
    steps = tuple(
        Step(rule, explanation, expression, note, verify_equal(expression, target))
        for rule, explanation, expression, note in candidates
    )
    return Derivation(parameter=name, symbol=symbol, steps=steps, result=result)


# Derivations of their own, by the name a loss entry gives them (Loss.derivation), for
# losses the chain rule through one residual does not describe
DERIVATIONS: dict[str, Callable[[str, sp.Symbol, sp.Expr], Derivation]] = {
    "logistic": derive_logistic,
}


@cache
def build_symbolic(model: Model, loss: Loss) -> Symbolic:
    """The derivations for a model and loss (cached: verifying steps takes about a second)."""
    parameters = {name: sp.Symbol(name, real=True) for name in model.parameters}
    prediction = model.prediction(parameters, feature_symbols(model.features))
    residual = loss.inner(prediction, Y_I)
    # Over several features a written-out term is a whole dot product: name it r_k
    several = model.features > 1
    loss_formula = Formula(
        coefficient=_one_over_n(),
        summand=loss.per_sample(prediction, Y_I) if loss.per_sample else loss.outer(residual),
        shorthand=residual if several else None,
    )
    own = DERIVATIONS[loss.derivation] if loss.derivation else None
    derivations = {
        name: own(name, symbol, prediction)
        if own
        else derive_parameter(name, symbol, prediction, loss, several)
        for name, symbol in parameters.items()
    }
    return Symbolic(
        model=model,
        loss_definition=loss,
        parameters=parameters,
        prediction=prediction,
        residual=residual,
        loss=loss_formula,
        derivations=derivations,
    )


def wrong_formula(formula: Formula, kind: str) -> Formula:
    """A deliberately wrong derivative, to show that the checks catch it (x-for-y with
    several features writes the first feature where y_i belongs)."""
    if kind == "drop-factor-2":
        return replace(formula, coefficient=formula.coefficient / 2)
    if kind == "drop-mean":
        return replace(formula, coefficient=formula.coefficient * N)
    if kind == "x-for-y":
        first = next(iter(sorted(formula.summand.atoms(sp.Indexed), key=str)), X_I)
        x = first if first.base == X else X_I
        return Formula(formula.coefficient, formula.summand.subs(Y_I, x))
    if kind == "r-for-sign":  # d|r|/dr taken as r, as if |r| were r^2 / 2
        return Formula(formula.coefficient, formula.summand.replace(sp.sign, lambda r: r))
    if kind == "flip-sign":
        return replace(formula, coefficient=-formula.coefficient)
    if kind == "forget-sigma":  # as if the loss were (z - y)^2 / 2 on the logit
        return Formula(formula.coefficient, formula.summand.replace(Sigmoid, lambda z: z))
    raise InputError("unknown kind of wrong derivative", kind)


def evaluate_exact(
    symbolic: Symbolic,
    formula: Formula,
    parameters: Mapping[str, Fraction],
    xs: Sequence[Fraction] | Sequence[Sequence[Fraction]],
    ys: Sequence[Fraction],
) -> tuple[Fraction, list[Fraction]]:
    """The formula's exact value and each sample's summand, in rational arithmetic;
    `xs` holds each sample's feature, or its row of features."""
    function = symbolic.sample_function(formula.summand)
    arguments = list(parameters.values())
    rows = [tuple(x) if isinstance(x, Sequence) else (x,) for x in xs]
    terms = [Fraction(function(*arguments, *row, y)) for row, y in zip(rows, ys, strict=True)]
    coefficient = Fraction(str(formula.coefficient.subs(N, len(xs))))
    return coefficient * sum(terms, Fraction(0)), terms
