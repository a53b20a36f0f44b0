"""What a derivation is made of: named steps, each checked, ending in a formula
coefficient(n) * sum over i of a summand, and how such a formula is written out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from ..common.i18n import Message
from .printing import ReportLatexPrinter, latex
from .symbols import I, N


@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``= expression``, justified by a named rule."""

    rule: str  # its name, in English; the catalogue key is rule_key
    explanation: Message
    expression: sp.Expr
    note: str  # LaTeX of the rule as applied here, shown beside the step
    verified: bool

    @property
    def latex(self) -> str:
        return latex(self.expression)

    @property
    def rule_key(self) -> str:
        return rule_key(self.rule)


def rule_key(rule: str) -> str:
    """The catalogue key of a rule's name: "chain rule" -> "rule.chain_rule"."""
    return "rule." + rule.replace(" ", "_")


@dataclass(frozen=True)
class Formula:
    """coefficient(n) * sum over i of summand(parameters, x_i, y_i)."""

    coefficient: sp.Expr
    summand: sp.Expr
    # Written-out sums print this (the residual over several features) as r_k: term by
    # term it would not fit a line. None: every term in full.
    shorthand: sp.Expr | None = None

    @property
    def expression(self) -> sp.Expr:
        return sp.Mul(self.coefficient, sp.Sum(self.summand, (I, 1, N)), evaluate=False)

    @property
    def latex(self) -> str:
        return latex(self.expression)

    def term(self, k: int) -> sp.Expr:
        return self.summand.subs(I, k)

    def written_out(self, n: int) -> sp.Expr:
        return self.coefficient.subs(N, n) * sp.Add(*[self.term(k) for k in range(1, n + 1)])

    def coefficient_latex(self, n: int) -> str:
        """The coefficient at this n, unsimplified: 2/2 stays 2/2, so n is visible."""
        return latex(self.coefficient.subs(N, sp.Symbol(str(n), positive=True)))

    def term_latex(self, k: int, printer: ReportLatexPrinter | None = None) -> str:
        term = self.term(k)
        if self.shorthand is not None:
            term = term.xreplace({self.shorthand.subs(I, k): sp.Symbol(f"r_{{{k}}}")})
        text = (printer or ReportLatexPrinter({"long_frac_ratio": 1})).doprint(term)
        return rf"\left({text}\right)" if isinstance(term, sp.Add) else text

    def written_out_latex(self, n: int) -> str:
        return bracket_sum(self.coefficient_latex(n), self.term_latex, n)


def shown_terms(n: int, show: int = 3) -> list[int | None]:
    """Indices of the terms written out; None marks the elided middle."""
    if n <= show + 1:
        return list(range(1, n + 1))
    return [*range(1, show), None, n]


def bracket_sum(coefficient: str, term: Callable[[int], str], n: int, show: int = 3) -> str:
    """coefficient [term_1 + term_2 + ... + term_n], eliding the middle of long sums."""
    parts = [r"\cdots" if k is None else term(k) for k in shown_terms(n, show)]
    return coefficient + r" \left[ " + " + ".join(parts) + r" \right]"


@dataclass(frozen=True)
class Derivation:
    """d loss / d parameter for general n, as steps ending in a :class:`Formula`."""

    parameter: str
    symbol: sp.Symbol
    steps: tuple[Step, ...]
    result: Formula

    @property
    def verified(self) -> bool:
        return all(step.verified for step in self.steps)
