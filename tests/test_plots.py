"""The training plots keep their labels inside the figure and their legends off the data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from derive.problem.problem import Dataset, make_problem
from derive.render import plotdata, plots
from derive.report.build import formulas_for, symbolic_for
from derive.report.landscape import plot_spec
from derive.report.training import reference_trace

SAMPLES = 20_000


def _problem(x: np.ndarray, y: np.ndarray, init: dict[str, float]):  # type: ignore[no-untyped-def]
    dataset = Dataset("many", tuple(map(float, x)), tuple(map(float, y)), "test")
    return make_problem(dataset, init=init)


def _data(problem):  # type: ignore[no-untyped-def]
    """The plots' numbers for a run without TensorFlow (exact gradients in float32)."""
    symbolic = symbolic_for(problem)
    trace = reference_trace(problem, symbolic, formulas_for(symbolic))
    return plotdata.plot_data_from_trace(plot_spec(problem, symbolic), trace)


def _cases():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(20_000)
    x = rng.uniform(0, 10, SAMPLES)
    line = 0.7 * x + 1.5 + rng.normal(0, 1, SAMPLES)
    return {
        # from far away: the loss falls over a decade
        "falling": (x, line, {"W": 0.2, "b": 0.7}),
        # near the optimum: the loss spans less than a decade, so the log axis labels
        # its minor ticks (wide labels), and the curve runs along the top
        "flat": (x, line, {"W": 0.69, "b": 1.4}),
        # large values: long tick labels; the data fill the upper left
        "large": (
            x * 1000,
            -40 * x * 1000 + 9e5 + rng.normal(0, 1e4, SAMPLES),
            {"W": 0.0, "b": 0.0},
        ),
        # x up to 10^5: six-digit tick labels (this one diverges at the default rate)
        "wide": (x * 1e4, 0.003 * x * 1e4 + 5 + rng.normal(0, 10, SAMPLES), {"W": 0.4, "b": 0.7}),
    }


@pytest.fixture(scope="module", params=sorted(_cases()))
def figures(request):
    x, y, init = _cases()[request.param]
    data = _data(_problem(x, y, init))
    drawn = {}
    for name in ("loss", "fit", "surface"):
        figure = getattr(plots, f"{name}_figure")(data)
        renderer = FigureCanvasAgg(figure).get_renderer()
        figure.draw(renderer)
        drawn[name] = (figure, renderer)
    return drawn


def _inside(inner, outer, slack: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
    return (
        inner.x0 >= outer.x0 - slack
        and inner.y0 >= outer.y0 - slack
        and inner.x1 <= outer.x1 + slack
        and inner.y1 <= outer.y1 + slack
    )


@pytest.mark.parametrize("name", ["loss", "fit", "surface"])
def test_labels_lie_within_the_figure(figures, name):
    figure, renderer = figures[name]
    for ax in figure.axes:
        label = ax.yaxis.label
        if label.get_text():
            assert _inside(label.get_window_extent(renderer), figure.bbox), label.get_text()
        # everything drawn for the axes: tick labels, axis labels, title
        assert _inside(ax.get_tightbbox(renderer), figure.bbox)


def _plotted_points(figure) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Every drawn vertex and marker of the data axes, in display coordinates (those
    outside an axes are clipped away, not drawn)."""
    points = []
    for ax in figure.axes:
        found = [
            line.get_transform().transform(np.column_stack(line.get_data()).astype(float))
            for line in ax.get_lines()
        ]
        found += [
            c.get_offset_transform().transform(c.get_offsets())
            for c in ax.collections
            if len(c.get_offsets())
        ]
        if not found:
            continue
        xy = np.concatenate(found)
        box = ax.bbox
        drawn = (
            (xy[:, 0] >= box.x0)
            & (xy[:, 0] <= box.x1)
            & (xy[:, 1] >= box.y0)
            & (xy[:, 1] <= box.y1)
        )
        points.append(xy[drawn])
    return np.concatenate(points)


@pytest.mark.parametrize("name", ["loss", "fit", "surface"])
def test_legends_cover_no_plotted_point(figures, name):
    figure, renderer = figures[name]
    legends = [ax.get_legend() for ax in figure.axes] + list(figure.legends)
    legends = [legend for legend in legends if legend is not None]
    assert legends
    points = _plotted_points(figure)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        covered = (
            (points[:, 0] >= box.x0)
            & (points[:, 0] <= box.x1)
            & (points[:, 1] >= box.y0)
            & (points[:, 1] <= box.y1)
        )
        assert not covered.any(), points[covered][:5]
        assert _inside(box, figure.bbox)


@pytest.mark.parametrize("name", ["loss", "fit", "surface"])
def test_tick_labels_do_not_collide(figures, name):
    figure, renderer = figures[name]
    for ax in figure.axes:
        for axis, start, end in ((ax.xaxis, "x0", "x1"), (ax.yaxis, "y0", "y1")):
            boxes = sorted(
                (
                    label.get_window_extent(renderer)
                    for label in axis.get_ticklabels()
                    if label.get_visible() and label.get_text()
                ),
                key=lambda box: getattr(box, start),
            )
            for left, right in itertools.pairwise(boxes):
                assert getattr(left, end) <= getattr(right, start) + 0.5, (name, axis)
