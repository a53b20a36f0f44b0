"""Formulas with numbers put in, the way one works them by hand.

Each quantity is shown as a chain: the formula written out for this n, the same
with every symbol replaced by the number the tape used, the residuals evaluated,
each term evaluated, and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from ..common.numbers import as_float, latex_number, signed_latex
from ..exact.adjoint_values import chosen_branches
from ..exact.reference import Samples, sample_values
from ..symbolic.derivation import (
    Formula,
    I,
    ReportLatexPrinter,
    Symbolic,
    Y,
    bracket_sum,
    shown_terms,
)


class NumberPrinter(ReportLatexPrinter):
    """Prints chosen symbols as numbers, with explicit multiplication dots."""

    def __init__(self, numbers: Mapping[sp.Basic, Fraction]) -> None:
        super().__init__({"long_frac_ratio": 1, "mul_symbol": "dot"})
        self.numbers = numbers

    def _number(self, expr: sp.Basic) -> str | None:
        if expr not in self.numbers:
            return None
        value = self.numbers[expr]
        text = latex_number(value)
        return rf"\left({text}\right)" if value < 0 else text

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        return self._number(expr) or super()._print_Symbol(expr, style)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        return self._number(expr) or super()._print_Indexed(expr)


@dataclass(frozen=True)
class Term:
    """One term of the sum, worked out: numbers in, residual evaluated, value."""

    k: int
    symbols: str  # LaTeX of the term with symbols
    with_numbers: str  # the same with the numbers the tape used
    with_residual: str  # the residual evaluated; empty when the term is the residual
    value: str  # LaTeX of the term's exact value


@dataclass(frozen=True)
class Substitution:
    """One quantity worked out by hand, term by term, then summed."""

    quantity: str
    lhs: str  # LaTeX, e.g. \frac{\partial L}{\partial W}
    written_out: str  # the formula for this n, with symbols
    terms: tuple[Term, ...]  # the first few and the last; the middle is elided for large n
    elided: int
    total: str  # coefficient [value_1 + ... + value_n]
    value: float
    in_full: bool = True  # shown step by step (see derive.report.condensed)


def substitute(
    symbolic: Symbolic,
    quantity: str,
    lhs: str,
    formula: Formula,
    parameters: Mapping[str, Fraction],
    samples: Samples,
    total_value: Fraction,
) -> Substitution:
    """The working for one quantity; `total_value` is its reference value over all samples."""
    n = samples.n
    shown = [k for k in shown_terms(n) if k is not None]
    indices = [k - 1 for k in shown]
    term_values = dict(
        zip(
            shown,
            sample_values(symbolic, formula.summand, parameters, samples, indices),
            strict=True,
        )
    )
    residual_values = dict(
        zip(
            shown,
            sample_values(symbolic, symbolic.residual, parameters, samples, indices),
            strict=True,
        )
    )
    several = len(symbolic.features) > 1
    prediction_values = (
        dict(
            zip(
                shown,
                sample_values(symbolic, symbolic.prediction, parameters, samples, indices),
                strict=True,
            )
        )
        if several
        else {}
    )

    def inputs(k: int) -> dict[sp.Basic, Fraction]:
        numbers: dict[sp.Basic, Fraction] = {
            symbolic.parameters[name]: v for name, v in parameters.items()
        }
        data = (*(f.subs(I, k) for f in symbolic.features), Y[k])
        numbers.update(zip(data, samples.fractions(k - 1), strict=True))
        return numbers

    def term_of(k: int) -> sp.Expr:
        """Sample k's term, with the branch it falls in (Huber's) chosen exactly."""
        term = formula.term(k)
        return chosen_branches(term, inputs(k)) if term.has(sp.Piecewise) else term

    def printed(k: int, printer: ReportLatexPrinter) -> str:
        term = term_of(k)
        text = printer.doprint(term)
        return rf"\left({text}\right)" if isinstance(term, sp.Add) else text

    def with_residual(k: int) -> str:
        placeholder = sp.Symbol(f"r_{k}")
        term = term_of(k).xreplace({symbolic.residual.subs(I, k): placeholder})
        if term == placeholder:
            return ""
        numbers = inputs(k)
        numbers[placeholder] = residual_values[k]
        printed = NumberPrinter(numbers).doprint(term)
        return rf"\left({printed}\right)" if isinstance(term, sp.Add) else printed

    def residual_line(k: int) -> str:
        """Several features: the residual from the prediction, whose numbers (a row of
        X times W, in the per-sample table) would not fit one line here."""
        y_k = samples.fractions(k - 1)[-1]
        return (
            rf"r_{{{k}}} = \hat{{y}}_{{{k}}} - y_{{{k}}} = "
            rf"{signed_latex(prediction_values[k])} - {signed_latex(y_k)} = "
            + latex_number(residual_values[k], keep_zeros=True)
        )

    def term_value(k: int) -> str:
        text = latex_number(term_values[k], keep_zeros=True)
        return rf"\left({text}\right)" if term_values[k] < 0 else text

    terms = tuple(
        Term(
            k=k,
            symbols=printed(k, ReportLatexPrinter({"long_frac_ratio": 1})),
            with_numbers=residual_line(k) if several else printed(k, NumberPrinter(inputs(k))),
            with_residual=with_residual(k),
            value=latex_number(term_values[k], keep_zeros=True),
        )
        for k in shown
    )
    return Substitution(
        quantity=quantity,
        lhs=lhs,
        written_out=formula.written_out_latex(n),
        terms=terms,
        elided=n - len(shown),
        total=bracket_sum(formula.coefficient_latex(n), term_value, n),
        value=as_float(total_value),
    )
