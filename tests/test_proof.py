"""SymPy's proofs of zero with branches (derive.symbolic.proof): every combination of
the conditions is tried, so a branch that differs is found wherever it is."""

from __future__ import annotations

import sympy as sp

from derive.symbolic.proof import is_zero

R, D, X = sp.symbols("r delta x", real=True)
HUBER_PRIME = sp.Piecewise((R, sp.Abs(R) <= D), (D * sp.sign(R), True))


def test_equal_branches_are_proved_zero() -> None:
    same = sp.Piecewise((R * X, sp.Abs(R) <= D), (D * sp.sign(R) * X, True))
    assert is_zero(HUBER_PRIME * X - same)
    assert is_zero(sp.expand(2 * HUBER_PRIME) - HUBER_PRIME - HUBER_PRIME)


def test_a_branch_that_differs_is_found() -> None:
    outside_wrong = sp.Piecewise((R, sp.Abs(R) <= D), (D * sp.sign(R) + X, True))
    inside_wrong = sp.Piecewise((2 * R, sp.Abs(R) <= D), (D * sp.sign(R), True))
    assert not is_zero(HUBER_PRIME - outside_wrong)
    assert not is_zero(HUBER_PRIME - inside_wrong)


def test_two_conditions_take_every_combination() -> None:
    kink = sp.Piecewise((1, R >= 0), (0, True))
    both = HUBER_PRIME * kink
    assert is_zero(both - sp.Piecewise((R, sp.Abs(R) <= D), (D * sp.sign(R), True)) * kink)
    # differs only where |r| > delta and r < 0: one of the four combinations
    other = sp.Piecewise((R, sp.Abs(R) <= D), (D * sp.sign(R), True)) * sp.Piecewise(
        (1, R >= 0), (X, True)
    )
    assert not is_zero(both - other)


def test_without_branches_simplify_decides() -> None:
    assert is_zero((X + 1) ** 2 - X**2 - 2 * X - 1)
    assert not is_zero((X + 1) ** 2 - X**2 - 1)
