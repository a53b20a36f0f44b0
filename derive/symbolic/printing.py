"""LaTeX as the report shows it: SymPy's, with the chain rule's order kept and branches
(Piecewise) named where cases would be long."""

from __future__ import annotations

import re
from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from .symbols import I

_INDEX = re.compile(r"\d+")


class ReportLatexPrinter(LatexPrinter):
    """SymPy's LaTeX, with 1/n in front of sums and chain-rule products kept in order."""

    def _as_ordered_terms(self, expr: Any, order: Any = None) -> list[Any]:
        """SymPy's order, except that terms alike up to their indices come in the
        indices' numeric order: W_1 x_1 + W_2 x_2 + ... + W_10 x_10, where SymPy's
        compares names as text (W_1, W_10, W_2)."""
        terms = list(super()._as_ordered_terms(expr, order))
        kinds: dict[str, list[int]] = {}
        for position, term in enumerate(terms):
            kinds.setdefault(_INDEX.sub("#", str(term)), []).append(position)
        for positions in kinds.values():
            if len(positions) > 1:
                alike = sorted(
                    (terms[p] for p in positions),
                    key=lambda term: [int(d) for d in _INDEX.findall(str(term))],
                )
                for position, term in zip(positions, alike, strict=True):
                    terms[position] = term
        return terms

    def _print_Mul(self, expr: sp.Mul) -> str:
        # SymPy sorts factors for printing; in a chain-rule step the outer derivative
        # must come first, as written in the rule.
        if any(isinstance(arg, sp.Subs) for arg in expr.args):
            return " ".join(
                self._print(arg)
                if isinstance(arg, (sp.Subs, sp.Derivative))
                else self.parenthesize(arg, PRECEDENCE["Mul"])
                for arg in expr.args
            )
        return super()._print_Mul(expr)

    def _compact(self, expr: sp.Basic) -> bool:
        """A Piecewise printed as one function call or bracket (no cases)."""
        if not isinstance(expr, sp.Piecewise):
            return False
        if _flag(expr) is not None:
            return True
        named = _named(expr)
        return named is not None and named[2] == 1

    def _needs_mul_brackets(self, expr: sp.Expr, first: bool = False, last: bool = False) -> bool:
        return not self._compact(expr) and super()._needs_mul_brackets(expr, first, last)

    def parenthesize(
        self, item: sp.Basic, level: int, is_neg: bool = False, strict: bool = False
    ) -> str:
        if self._compact(item):
            return self._print(item)
        return super().parenthesize(item, level, is_neg, strict)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # A branch flag (SelectV2's choice) as an Iverson bracket: [c] is 1 where c holds
        flag = _flag(expr)
        if flag is not None:
            condition, holds = flag
            inner = self._print(condition)
            return rf"\left[{inner}\right]" if holds else rf"\left[\lnot {inner}\right]"
        # Huber's function and its derivative of one written-out sample (the general
        # formula, with i, defines them by cases): h_delta(u), h'_delta(u) q
        named = _named(expr)
        if named is not None:
            name, argument, factor = named
            call = rf"{name}\left({self._print(argument)}\right)"
            if factor == 1:
                return call
            return call + " " + self.parenthesize(factor, PRECEDENCE["Mul"])
        # Cases without words ("for", "otherwise" would stay English in every language):
        # the second branch's condition is the first one's negation, written out
        if len(expr.args) == 2 and expr.args[1].cond is sp.true:
            (first, condition), (second, _) = expr.args
            rows = (
                (first, condition),
                (second, sp.Not(condition)),
            )
            body = r" \\ ".join(f"{self._print(v)} & {self._print(c)}" for v, c in rows)
            return rf"\begin{{cases}} {body} \end{{cases}}"
        return super()._print_Piecewise(expr)


def _flag(expr: sp.Piecewise) -> tuple[sp.Basic, bool] | None:
    """Piecewise((1, c), (0, True)) -> (c, True); with 0 and 1 swapped -> (c, False)."""
    if len(expr.args) != 2 or expr.args[1].cond is not sp.true:
        return None
    (first, condition), (second, _) = expr.args
    if (first, second) == (1, 0):
        return condition, True
    if (first, second) == (0, 1):
        return condition, False
    return None


def _named(expr: sp.Piecewise) -> tuple[str, sp.Expr, sp.Expr] | None:
    """Huber's h or h' of one sample (a condition without the index i: the formula for
    general i, which defines them, keeps its cases)."""
    if I in expr.args[0].cond.free_symbols:
        return None
    return _huber_form(expr)


def _huber_form(expr: sp.Piecewise) -> tuple[str, sp.Expr, sp.Expr] | None:
    """(name, u, q) when expr is h(u) or h'(u) q for the Huber threshold delta."""
    if len(expr.args) != 2 or expr.args[1].cond is not sp.true:
        return None
    (inside, condition), (outside, _) = expr.args
    if not (isinstance(condition, sp.LessThan) and isinstance(condition.lhs, sp.Abs)):
        return None
    u, delta = condition.lhs.args[0], condition.rhs
    if (
        sp.expand(inside - u**2 / 2) == 0
        and sp.expand(outside - (delta * abs(u) - delta**2 / 2)) == 0
    ):
        return r"h_{\delta}", u, sp.Integer(1)
    factor = sp.cancel(inside / u)
    if sp.expand(outside - delta * sp.sign(u) * factor) == 0:
        return r"h'_{\delta}", u, factor
    return None


def latex(expr: sp.Basic) -> str:
    """LaTeX as shown in the report."""
    return ReportLatexPrinter({"long_frac_ratio": 1}).doprint(expr)


def subscripted(name: str, step: str) -> str:
    """A parameter's LaTeX name at a step: W, t -> W_{t}; W_1, t -> W_{1}^{(t)} (W_1_{t}
    is a double subscript, which LaTeX refuses, and W_{1,t} reads as a matrix entry)."""
    base, _, own = name.partition("_")
    return rf"{base}_{{{own}}}^{{({step})}}" if own else rf"{name}_{{{step}}}"
