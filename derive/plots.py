"""Training plots: matplotlib Figures (not pyplot) written as inline SVG.

The SVG bytes are deterministic (a fixed ``svg.hashsalt`` per figure and no date),
text stays text (``svg.fonttype = none``: small, searchable, quick to print), and
every id is prefixed with the figure's name so several figures can share a page.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Polynomial = Mapping[tuple[int, ...], float]

COLORS = {"path": "#b3261e", "start": "#5b6470", "end": "#17703a", "optimum": "#1b1f24"}
FONT_SIZE = 8.5


@dataclass(frozen=True)
class PlotData:
    """What the plots show, as plain numbers."""

    names: tuple[str, ...]  # the parameters, e.g. ("W", "b")
    steps: Sequence[int]
    parameters: Mapping[str, Sequence[float]]
    loss: Sequence[float]
    gradients: Mapping[str, Sequence[float]]
    display: Sequence[int]  # the displayed steps (arrows, markers)
    x: Sequence[float]
    y: Sequence[float]
    loss_polynomial: Polynomial  # L(parameters) for this data
    prediction_polynomial: Polynomial | None  # y_hat(x, parameters), exponents of (x, *names)
    optimum: Mapping[str, float] | None
    optimum_loss: float | None
    diverged_at: int | None


def plot_data(training, x: Sequence[float], y: Sequence[float]) -> PlotData:  # type: ignore[no-untyped-def]
    """The plots' numbers from the training facts and the data the tape used."""
    series = training.series
    return PlotData(
        names=tuple(series.parameters),
        steps=series.steps,
        parameters=series.parameters,
        loss=series.loss,
        gradients=series.gradients,
        display=[row.step for row in training.rows if row.finite],
        x=x,
        y=y,
        loss_polynomial=training.loss_polynomial,
        prediction_polynomial=training.prediction_polynomial,
        optimum=training.optimum.parameters if training.optimum else None,
        optimum_loss=training.optimum.loss if training.optimum else None,
        diverged_at=training.diverged_at,
    )


def evaluate(polynomial: Polynomial, *values: np.ndarray | float) -> np.ndarray:
    total = np.zeros(np.broadcast(*values).shape) if values else np.zeros(())
    for exponents, coefficient in polynomial.items():
        term = np.full(total.shape, coefficient, dtype=float)
        for value, exponent in zip(values, exponents, strict=False):
            if exponent:
                term = term * np.asarray(value, dtype=float) ** exponent
        total = total + term
    return total


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure


def _style(ax) -> None:  # type: ignore[no-untyped-def]
    ax.tick_params(labelsize=FONT_SIZE - 1)
    ax.xaxis.label.set_size(FONT_SIZE)
    ax.yaxis.label.set_size(FONT_SIZE)
    ax.title.set_size(FONT_SIZE + 0.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


_ID = re.compile(r'\bid="([^"]+)"')
_REFERENCE = re.compile(r'(url\(#|href="#)([^)"]+)')
_STYLE_ATTRIBUTE = re.compile(r' style="([^"]*)"')
_STYLE_ELEMENT = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.S)


def _presentation_attributes(match: re.Match[str]) -> str:
    """style="fill: #fff; stroke: none" -> fill="#fff" stroke="none".

    In an HTML page every style attribute is HTML CSS, which knows no fill or
    stroke (WeasyPrint warns about each one); SVG presentation attributes are not.
    """
    pairs = (item.split(":", 1) for item in match.group(1).split(";") if ":" in item)
    return "".join(f' {name.strip()}="{value.strip()}"' for name, value in pairs)


def to_svg(figure, name: str, label: str) -> str:  # type: ignore[no-untyped-def]
    """The figure as inline SVG: deterministic, ids prefixed, sized by CSS."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"derive-{name}", "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # matplotlib's one stylesheet (*{stroke-linejoin: round; stroke-linecap: butt})
    # would apply to the whole page; the same defaults go on the root element instead.
    svg = _STYLE_ELEMENT.sub("", svg)
    svg = _STYLE_ATTRIBUTE.sub(_presentation_attributes, svg)
    svg = svg.replace("<svg ", '<svg stroke-linejoin="round" stroke-linecap="butt" ', 1)
    svg = _ID.sub(lambda m: f'id="{name}-{m.group(1)}"', svg)
    svg = _REFERENCE.sub(lambda m: f"{m.group(1)}{name}-{m.group(2)}", svg)
    label = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    svg = re.sub(
        r'<svg ([^>]*?)width="[^"]+" height="[^"]+"',
        rf'<svg \1class="plot" role="img" aria-label="{label}"',
        svg,
        count=1,
    )
    return svg.replace(">", f"><title>{label}</title>", 1)


def loss_plot(data: PlotData) -> str:
    figure = _figure(3.9, 2.8)
    ax = figure.add_subplot()
    steps = np.asarray(data.steps)
    loss = np.asarray(data.loss, dtype=float)
    positive = loss > 0
    ax.plot(
        steps[positive], loss[positive], color=COLORS["path"], linewidth=1.2, label="tape's loss"
    )
    shown = [s for s in data.display if s < len(loss) and loss[s] > 0]
    ax.plot(shown, loss[shown], "o", color=COLORS["path"], markersize=2.5)
    if data.optimum_loss is not None and data.optimum_loss > 0:
        ax.axhline(data.optimum_loss, color=COLORS["optimum"], linestyle="--", linewidth=0.8,
                   label="least-squares minimum")
    if positive.any():
        ax.set_yscale("log")
    if data.diverged_at is not None:
        ax.set_title(f"Loss (non-finite from step {data.diverged_at})")
    else:
        ax.set_title("Loss at each step")
    ax.set_xlabel("step")
    ax.set_ylabel("L (log scale)")
    ax.legend(fontsize=FONT_SIZE - 1, frameon=False)
    _style(ax)
    return to_svg(figure, "loss", "The loss against the step, on a log scale")


def fit_plot(data: PlotData) -> str | None:
    if data.prediction_polynomial is None:
        return None
    figure = _figure(3.9, 2.8)
    ax = figure.add_subplot()
    x = np.asarray(data.x, dtype=float)
    low, high = float(x.min()), float(x.max())
    pad = (high - low) * 0.08 or 1.0
    grid = np.linspace(low - pad, high + pad, 50)

    def line(values: Mapping[str, float]) -> np.ndarray:
        return evaluate(data.prediction_polynomial, grid, *(values[n] for n in data.names))  # type: ignore[arg-type]

    first = {n: data.parameters[n][0] for n in data.names}
    last = {n: data.parameters[n][-1] for n in data.names}
    ax.plot(data.x, data.y, "o", color=COLORS["optimum"], markersize=3.5, label="data")
    ax.plot(grid, line(first), "--", color=COLORS["start"], linewidth=1, label="step 0")
    ax.plot(grid, line(last), "-", color=COLORS["end"], linewidth=1.4,
            label=f"step {data.steps[-1]}")
    if data.optimum is not None:
        ax.plot(grid, line(data.optimum), ":", color=COLORS["optimum"], linewidth=1,
                label="least squares")
    ax.set_title("The data and the fitted line")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=FONT_SIZE - 1, frameon=False)
    _style(ax)
    return to_svg(figure, "fit", "The data with the line at the first and the last step")


def _window(path_w: np.ndarray, path_b: np.ndarray, data: PlotData) -> tuple[float, ...]:
    """A view around the start, the optimum and the path; a diverging path leaves it."""
    points_w = [path_w[0], *([data.optimum[data.names[0]]] if data.optimum else []), path_w[-1]]
    points_b = [path_b[0], *([data.optimum[data.names[1]]] if data.optimum else []), path_b[-1]]
    if data.diverged_at is not None:
        points_w, points_b = points_w[:-1], points_b[:-1]
    w_low, w_high = min(points_w), max(points_w)
    b_low, b_high = min(points_b), max(points_b)
    w_pad = max((w_high - w_low) * 0.35, 0.05 * max(abs(w_low), abs(w_high), 1e-3))
    b_pad = max((b_high - b_low) * 0.35, 0.05 * max(abs(b_low), abs(b_high), 1e-3))
    return w_low - w_pad, w_high + w_pad, b_low - b_pad, b_high + b_pad


def surface_plot(data: PlotData) -> str | None:
    if len(data.names) != 2:
        return None
    from matplotlib.colors import LogNorm

    first, second = data.names
    path_w = np.asarray(data.parameters[first], dtype=float)
    path_b = np.asarray(data.parameters[second], dtype=float)
    w_low, w_high, b_low, b_high = _window(path_w, path_b, data)
    grid_w, grid_b = np.meshgrid(np.linspace(w_low, w_high, 160), np.linspace(b_low, b_high, 120))
    surface = evaluate(data.loss_polynomial, grid_w, grid_b)
    floor = max(float(surface.min()), 1e-12 * max(float(surface.max()), 1e-300))
    surface = np.maximum(surface, floor)
    levels = np.geomspace(floor, float(surface.max()), 14)

    figure = _figure(7.0, 3.9)
    ax = figure.add_subplot()
    filled = ax.contourf(grid_w, grid_b, surface, levels=levels, norm=LogNorm(), cmap="Blues_r")
    ax.contour(grid_w, grid_b, surface, levels=levels, colors="white", linewidths=0.3)
    colorbar = figure.colorbar(filled, ax=ax, format="%.2g")
    colorbar.set_label("L", size=FONT_SIZE)
    colorbar.ax.tick_params(labelsize=FONT_SIZE - 1)
    ax.plot(path_w, path_b, "-", color=COLORS["path"], linewidth=1.1, label="SGD path")
    shown = [s for s in data.display if s < len(path_w)]
    gw = -np.asarray(data.gradients[first], dtype=float)[shown]
    gb = -np.asarray(data.gradients[second], dtype=float)[shown]
    # Arrows in data units, the longest a fifth of the view (in its larger direction).
    reach = max(
        float(np.max(np.abs(gw))) / (w_high - w_low) if len(gw) else 0.0,
        float(np.max(np.abs(gb))) / (b_high - b_low) if len(gb) else 0.0,
    )
    if reach > 0 and math.isfinite(reach):
        ax.quiver(
            path_w[shown], path_b[shown], gw, gb, angles="xy", scale_units="xy",
            scale=reach / 0.2, color=COLORS["path"], width=0.003, headwidth=4,
            label="\N{MINUS SIGN}\N{NABLA}L at the displayed steps (scaled)",
        )
    ax.plot(path_w[0], path_b[0], "o", color=COLORS["start"], markersize=5, label="step 0")
    ax.plot(path_w[-1], path_b[-1], "s", color=COLORS["end"], markersize=5,
            label=f"step {data.steps[-1]}")
    if data.optimum is not None:
        ax.plot(data.optimum[first], data.optimum[second], "*", color=COLORS["optimum"],
                markersize=9, label="least-squares optimum")
    ax.set_xlim(w_low, w_high)
    ax.set_ylim(b_low, b_high)
    ax.set_xlabel(first)
    ax.set_ylabel(second)
    ax.set_title(f"The loss over ({first}, {second}) and the path of SGD")
    ax.legend(fontsize=FONT_SIZE - 1, loc="best", framealpha=0.85)
    _style(ax)
    return to_svg(
        figure, "surface", f"Contours of the loss over {first} and {second}, with the SGD path"
    )


def training_plots(data: PlotData) -> dict[str, str]:
    """Every plot that applies, by name: loss, fit, surface."""
    plots = {"loss": loss_plot(data), "fit": fit_plot(data), "surface": surface_plot(data)}
    return {name: svg for name, svg in plots.items() if svg is not None}
