"""SymPy proves an expression zero, branch by branch where it has branches."""

from __future__ import annotations

from itertools import product

import sympy as sp

# Beyond this many distinct conditions, 2^m branch combinations cost more than folding
MAX_ENUMERATED_CONDITIONS = 8


def is_zero(expr: sp.Expr) -> bool:
    """SymPy proves expr == 0.

    With branches (Piecewise), every combination of the distinct conditions is tried,
    each condition taken as true or false, and the expression without branches that
    it leaves must simplify to 0. Whether every branch value is 0 does not depend on
    what the conditions say, so this proves the same as folding the Piecewise
    together (which compares and combines the conditions: on |W_1 x_i1 + ... + b - y_i|
    <= delta with ten features that took minutes), and `simplify` is fast on each
    combination. A combination that cannot happen (a condition and its negation both
    true) must be 0 as well: that can only fail a proof, never pass a wrong one."""
    if not expr.has(sp.Piecewise):
        return _simplifies_to_zero(expr)
    opaque, conditions = _opaque_conditions(expr)
    if len(conditions) > MAX_ENUMERATED_CONDITIONS:
        folded = sp.piecewise_fold(sp.expand(expr))
        if isinstance(folded, sp.Piecewise):
            return all(_simplifies_to_zero(value) for value, _ in folded.args)
        return _simplifies_to_zero(folded)
    return all(
        _simplifies_to_zero(opaque.xreplace(dict(zip(conditions, values, strict=True))))
        for values in product((sp.true, sp.false), repeat=len(conditions))
    )


def _simplifies_to_zero(expr: sp.Expr) -> bool:
    return bool(sp.simplify(sp.expand(expr)) == 0)


def _opaque_conditions(expr: sp.Expr) -> tuple[sp.Expr, list[sp.Dummy]]:
    """expr with each distinct branch condition replaced by a symbol of its own."""
    names: dict[sp.Basic, sp.Dummy] = {}

    def opaque(piecewise: sp.Piecewise) -> sp.Piecewise:
        branches = []
        for value, condition in piecewise.args:
            if condition not in (sp.true, sp.false):
                condition = names.setdefault(condition, sp.Dummy(f"c{len(names)}"))
            branches.append((value, condition))
        return sp.Piecewise(*branches)

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), opaque), list(names.values())
