"""The logistic cross-entropy's learning-rate bound: its Hessian (1/n) sum sigma'(z_i)
x~_i x~_i^T never exceeds (1/4n) X~^T X~ (sigma' <= 1/4), so 2 / lambda_max of that
matrix is a rate that is safe everywhere, not only at the initial values."""

from __future__ import annotations

import numpy as np
import pytest

from derive.exact.stability import rate_bound
from derive.problem.problem import Dataset, make_problem
from derive.symbolic.derivation import build_symbolic


def _problem(k: int, seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    columns = [tuple(float(np.float32(v)) for v in rng.normal(1, 2, 40)) for _ in range(k)]
    y = tuple(float(v) for v in rng.integers(0, 2, 40))
    if k == 1:
        dataset = Dataset("t", columns[0], y, "test")
    else:
        dataset = Dataset("t", (), y, "test", features=tuple(columns))
    return make_problem(dataset, model="logistic", loss="bce", seed=seed)


@pytest.mark.parametrize("k", [1, 2])
def test_the_rate_bound_is_eight_n_over_the_data_matrix(k: int) -> None:
    problem = _problem(k, 3 + k)
    symbolic = build_symbolic(problem.model_entry, problem.loss_entry)
    found = rate_bound(problem, symbolic)
    assert found is not None and not found.hessian.local
    x = np.column_stack([*(np.asarray(c, dtype=np.float64) for c in problem.columns), np.ones(40)])
    expected = np.linalg.eigvalsh(x.T @ x / (4 * 40)).max()
    assert found.lambda_max == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("k", [1, 2])
def test_the_hessian_at_any_point_lies_below_the_bound(k: int) -> None:
    """At random parameters the true Hessian's largest eigenvalue is below the bound's."""
    problem = _problem(k, 7 + k)
    symbolic = build_symbolic(problem.model_entry, problem.loss_entry)
    bound = rate_bound(problem, symbolic)
    assert bound is not None
    x = np.column_stack([*(np.asarray(c, dtype=np.float64) for c in problem.columns), np.ones(40)])
    rng = np.random.default_rng(k)
    for _ in range(20):
        theta = rng.normal(0, 2, k + 1)
        s = 1 / (1 + np.exp(-(x @ theta)))
        local = (x.T * (s * (1 - s))) @ x / 40
        assert np.linalg.eigvalsh(local).max() <= bound.lambda_max * (1 + 1e-12)
