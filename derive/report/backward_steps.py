"""The backward pass written out as one works it by hand: each op's local rule in LaTeX,
then with the tape's numbers put in, sample by sample (the middle elided for many)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from ..common.numbers import latex_number, signed_latex
from ..exact.roundings import exact_factor
from ..symbolic.adjoints import (
    SymbolicBackward,
    Vertex,
)
from ..symbolic.derivation import N, ReportLatexPrinter
from ..symbolic.derivation import shown_terms as _shown_terms
from .backward_facts import (
    SHOWN_WORKED,
    Propagation,
)

if TYPE_CHECKING:
    from ..tape.backward import BackwardTrace


class _Printer(ReportLatexPrinter):
    """LaTeX with node symbols printed by their names, or as numbers."""

    def __init__(
        self, names: Mapping[sp.Basic, str], numbers: Mapping[sp.Basic, float] | None = None
    ) -> None:
        super().__init__({"mul_symbol": "dot" if numbers else None})
        self.names = names
        self.numbers = numbers or {}

    def _leaf(self, expr: sp.Basic) -> str | None:
        if expr in self.numbers:
            return signed_latex(self.numbers[expr])
        return self.names.get(expr)

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        return self._leaf(expr) or super()._print_Symbol(expr, style)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        return self._leaf(expr) or super()._print_Indexed(expr)


def _at(symbol: str, k: int | str) -> str:
    """A node's symbol at sample k: r_{i} -> r_{k}, x_{i,2} -> x_{k,2}."""
    return symbol.replace("_{i}", f"_{{{k}}}").replace("_{i,", f"_{{{k},")


def partial_of(symbol: str) -> str:
    return rf"\frac{{\partial L}}{{\partial {symbol}}}"


def _shown(n: int) -> list[int | None]:
    return _shown_terms(n, SHOWN_WORKED)


class StepWriter:
    """Builds the LaTeX of the report's backward section from the graph and the tape."""

    def __init__(
        self,
        backward: SymbolicBackward,
        trace: BackwardTrace,
        n: int,
        condensed: frozenset[str] = frozenset(),
    ) -> None:
        """`condensed`: parameters whose propagations show the rule without the numbers
        (derive.report.condensed)."""
        self.backward = backward
        self.trace = trace
        self.n = n
        self.condensed = condensed
        self.vertices = {v.name: v for v in backward.graph}

    def names(self, k: int | str = "i", n: str = "n") -> dict[sp.Basic, str]:
        names: dict[sp.Basic, str] = {N: n}
        for vertex in self.backward.graph:
            names[self.backward.symbols[vertex.name]] = _at(vertex.symbol, k)
        return names

    def latex(self, expr: sp.Expr, k: int | str = "i", n: str = "n") -> str:
        return _Printer(self.names(k, n)).doprint(expr)

    def numbers(self, k: int) -> dict[sp.Basic, float]:
        numbers: dict[sp.Basic, float] = {N: float(self.n)}
        for vertex in self.backward.graph:
            values = self.trace.values[vertex.name]
            value = values[k - 1 if len(values) > 1 else 0]
            numbers[self.backward.symbols[vertex.name]] = float(value)
        return numbers

    def with_numbers(self, expr: sp.Expr, k: int) -> str:
        return _Printer(self.names(k), self.numbers(k)).doprint(expr)

    def definition(self, vertex: Vertex) -> str:
        if vertex.op is None:
            return vertex.symbol
        operands = [self.vertices[name].symbol for name in vertex.inputs]
        return f"{vertex.symbol} = " + vertex.op.written(operands)

    def adjoint(self, name: str, k: int) -> float:
        values = self.trace.adjoints[name]
        values = () if values is None else values
        return float(values[k - 1 if len(values) > 1 else 0])

    def contribution(self, local: sp.Expr, consumer: str, k: int) -> float:
        """local * upstream at sample k, as the tape multiplies them (in its dtype)."""
        dtype = np.asarray(self.trace.values[consumer]).dtype.type
        factor = dtype(float(local.xreplace(self.numbers(k))))
        return float(factor * dtype(self.adjoint(consumer, k)))

    def sum_lines(self, consumer: Vertex, name: str, lhs: str) -> tuple[str, ...]:
        """lhs term_1 + term_2 + ... + term_n = total, with the tape's numbers.

        Long sums are broken after every few terms, so that no line is wider than the page.
        """
        local = self.backward.locals[(consumer.name, name)]
        parts = []
        for k in _shown_terms(self.n, 4):
            if k is None:
                parts.append(r"\cdots")
                continue
            adjoint = signed_latex(self.adjoint(consumer.name, k))
            factor = self.with_numbers(local, k)
            parts.append(adjoint if local == 1 else rf"{factor} \cdot {adjoint}")
        # The tape's sum (and products) in its dtype: rounded, so "approx", not "=".
        total = rf"\approx {latex_number(self.adjoint(name, 1))}"
        if len(parts) == 1 and local == 1:  # one sample passed through: just the number
            return (f"{lhs} {latex_number(self.adjoint(name, 1))}",)
        per_line = 3 if local == 1 else 2
        if len(parts) <= per_line:
            return (f"{lhs} {' + '.join(parts)} {total}",)
        chunks = [parts[i : i + per_line] for i in range(0, len(parts), per_line)]
        return (
            f"{lhs} {' + '.join(chunks[0])}",
            *(rf"\qquad + {' + '.join(chunk)}" for chunk in chunks[1:]),
            rf"\qquad {total}",
        )

    def propagation(self, consumer: Vertex, name: str) -> Propagation:
        target = self.vertices[name]
        if not target.watched:
            return Propagation(name, False, False, "", ())
        local = self.backward.locals[(consumer.name, name)]
        broadcast = name in self.backward.broadcast
        upstream = partial_of(consumer.symbol)

        def product(local_text: str, upstream_text: str) -> str:
            if local == 1:
                return upstream_text
            if local == -1:
                return "-" + upstream_text
            return rf"{local_text} \cdot {upstream_text}"

        if broadcast:
            rule = f"{partial_of(target.symbol)} = \\sum_{{i=1}}^{{n}} " + product(
                self.latex(local), upstream
            )
            if name in self.condensed:
                return Propagation(name, True, True, rule, ())
            lines = self.sum_lines(consumer, name, f"{partial_of(target.symbol)} =")
            return Propagation(name, True, True, rule, lines)
        # A node several ops read (Huber's r: Square and Abs) gets one contribution from
        # each; the tape adds them (AddN), so each line shows its own part, "+=".
        shared = sum(1 for (_, input_name) in self.backward.locals if input_name == name) > 1
        assign = r"\mathrel{+}=" if shared else "="
        rule = f"{partial_of(target.symbol)} {assign} " + product(self.latex(local), upstream)
        if not target.per_sample and not consumer.per_sample:
            ks: list[int | None] = [1]
        else:
            ks = _shown(self.n)

        def line(k: int) -> str:
            # A pass-through names the upstream adjoint instead of repeating its number.
            upstream_k = partial_of(_at(consumer.symbol, k))
            middle = (
                product("", upstream_k)
                if local in (1, -1)
                else product(
                    self.with_numbers(local, k), signed_latex(self.adjoint(consumer.name, k))
                )
            )
            # A product the tape rounded is "approx" its result; a pass-through, a product
            # with a power of two or with a flag, and one with a zero adjoint are exact.
            exact = exact_factor(local.subs(N, self.n)) or self.adjoint(consumer.name, k) == 0
            equals = "=" if local in (1, -1) or exact else r"\approx"
            value = self.contribution(local, consumer.name, k) if shared else self.adjoint(name, k)
            return (
                f"{partial_of(_at(target.symbol, k))} {assign} {middle}"
                f" {equals} {latex_number(value)}"
            )

        lines = tuple(None if k is None else line(k) for k in ks)
        readers = [c for c in self.backward.graph if (c.name, name) in self.backward.locals]
        if not shared or consumer.name != readers[0].name:
            return Propagation(name, True, False, rule, lines)

        # The last contribution the tape computes: then AddN adds them all up
        def total(k: int) -> str:
            parts = [
                self.contribution(self.backward.locals[(c.name, name)], c.name, k)
                for c in reversed(readers)
            ]
            added = " + ".join(signed_latex(p) for p in parts)
            return (
                f"{partial_of(_at(target.symbol, k))} = {added}"
                f" \\approx {latex_number(self.adjoint(name, k))}"
            )

        totals = tuple(None if k is None else total(k) for k in ks)
        return Propagation(name, True, False, rule, lines, totals)
