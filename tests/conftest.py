"""Shared fixtures. TensorFlow tests carry the `tensorflow` marker (see pyproject.toml)."""

from __future__ import annotations

import os

import pytest

from derive.problem.problem import Dataset

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The learner's case from the reference script: one sample and its random initial values.
SINGLE_INIT = {"W": 0.21318328, "b": 0.78609025}


def init_for(dataset: Dataset) -> dict[str, float]:
    """SINGLE_INIT for one feature; for k features W_1 ... W_k from the same few values."""
    if dataset.k == 1:
        return dict(SINGLE_INIT)
    weights = (0.21318328, -0.3, 0.125, 0.5, -0.0625)
    return {**{f"W_{j + 1}": weights[j % 5] for j in range(dataset.k)}, "b": 0.78609025}


SINGLE_INIT_FLAG = ["--init", ",".join(f"{name}={value}" for name, value in SINGLE_INIT.items())]


def render_backward_partial(facts) -> str:  # type: ignore[no-untyped-def]
    """The backward section alone, from its facts (no TensorFlow, no full report)."""
    from types import SimpleNamespace

    from derive.render.environment import environment

    template = environment().get_template("partials/backward.html.j2")
    return template.render(report=SimpleNamespace(backward=facts))


@pytest.fixture(scope="session")
def symbolic():
    from derive.models.registry import get_loss, get_model
    from derive.symbolic.derivation import build_symbolic

    return build_symbolic(get_model("linear"), get_loss("mse"))


@pytest.fixture(scope="session")
def single_report():
    from derive.report.build import build_report

    return build_report("single", init=SINGLE_INIT)


@pytest.fixture(scope="session")
def seed_report():
    from derive.report.build import build_report

    return build_report("seed", init=SINGLE_INIT)
