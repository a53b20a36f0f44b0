"""Training plots: matplotlib Figures (not pyplot) written as inline SVG.

The SVG bytes are deterministic (a fixed ``svg.hashsalt`` per figure and no date),
text stays text (``svg.fonttype = none``: small, searchable, quick to print), and
every id is prefixed with the figure's name so several figures can share a page.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping

import numpy as np

from .glyphs import PATH_DATA, short_path
from .plotdata import PlotData, evaluate, loss_surface

COLORS = {"path": "#b3261e", "start": "#5b6470", "end": "#17703a", "optimum": "#1b1f24"}
FONT_SIZE = 8.5


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    """A Figure whose margins are measured from what it draws (constrained layout).

    Fixed margins clipped labels: their sizes depend on the data (a log axis over
    less than a decade labels its minor ticks, large values have long tick labels).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    figure.get_layout_engine().set(w_pad=0.04, h_pad=0.04)
    return figure


def _legend_below(figure, ax, columns: int) -> None:  # type: ignore[no-untyped-def]
    """The legend under the axes, outside the data: inside, with 20,000 samples or a
    curve along any edge, there is no place where it covers no point."""
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=columns,
        fontsize=FONT_SIZE - 1,
        frameon=False,
        columnspacing=1.2,
        handlelength=1.8,
    )


HALF = (3.9, 3.1)  # inches: the two small plots side by side


def _style(ax) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    # Linear axes: at most six ticks, and large or small values as a common factor
    # (x 10^5) at the axis' end, so that labels such as 100000 never collide.
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "linear" and type(axis.get_major_formatter()) is ScalarFormatter:
            axis.set_major_locator(MaxNLocator(nbins=5))
            formatter = ScalarFormatter(useMathText=True)
            formatter.set_powerlimits((-3, 4))
            axis.set_major_formatter(formatter)
            axis.get_offset_text().set_size(FONT_SIZE - 1)
    ax.tick_params(which="both", labelsize=FONT_SIZE - 1)
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
    # Six decimals and a line per point -> two decimals (1/200 pt) and single spaces.
    svg = PATH_DATA.sub(short_path, svg)
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


_SUPERSCRIPT = str.maketrans("-0123456789", "\N{SUPERSCRIPT MINUS}⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value: float, _position: int) -> str:
    """10⁻⁴ as plain text: matplotlib's default log labels go through its TeX layout,
    which costs more than the rest of the plot."""
    if value <= 0:
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return ""
    return "10" + str(round(exponent)).translate(_SUPERSCRIPT)


def _words(data: PlotData, key: str, **fields: object) -> str:
    """A title, label or legend in the report's language (derive/locales)."""
    from ..common.i18n import translator

    return translator(data.spec.lang).text(f"plot.{key}", **fields)


def loss_plot(data: PlotData) -> str:
    return to_svg(loss_figure(data), "loss", _words(data, "loss_alt"))


def loss_figure(data: PlotData):  # type: ignore[no-untyped-def]
    figure = _figure(*HALF)
    ax = figure.add_subplot()
    steps = np.asarray(data.steps)
    loss = np.asarray(data.loss, dtype=float)
    positive = np.isfinite(loss) & (loss > 0)
    ax.plot(
        steps[positive],
        loss[positive],
        color=COLORS["path"],
        linewidth=1.2,
        label=_words(data, "tape_loss"),
    )
    shown = [s for s in data.display if positive[s]]
    ax.plot(shown, loss[shown], "o", color=COLORS["path"], markersize=2.5)
    best = data.spec.optimum_loss
    if best is not None and best > 0:
        ax.axhline(
            best,
            color=COLORS["optimum"],
            linestyle="--",
            linewidth=0.8,
            label=_words(data, "least_squares_minimum"),
        )
    if positive.any():
        from matplotlib.ticker import LogFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_power_of_ten)
        # Over less than a decade only minor ticks fall in view; label them as plain
        # numbers (1.02), not in matplotlib's TeX layout (1.02 x 10^0).
        ax.yaxis.set_minor_formatter(LogFormatter())
    if data.diverged_at is not None:
        ax.set_title(_words(data, "loss_diverged", step=data.diverged_at))
    else:
        ax.set_title(_words(data, "loss_title"))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole: no 0.5
    ax.set_xlabel(_words(data, "step"))
    ax.set_ylabel(_words(data, "loss_axis"))
    _legend_below(figure, ax, columns=2)
    _style(ax)
    return figure


def fit_plot(data: PlotData) -> str | None:
    figure = fit_figure(data)
    return None if figure is None else to_svg(figure, "fit", _words(data, "fit_alt"))


def fit_figure(data: PlotData):  # type: ignore[no-untyped-def]
    spec = data.spec
    if spec.prediction_polynomial is None:
        return None
    polynomial = spec.prediction_polynomial
    figure = _figure(*HALF)
    ax = figure.add_subplot()
    x = np.asarray(spec.x, dtype=float)
    low, high = float(x.min()), float(x.max())
    pad = (high - low) * 0.08 or 1.0
    grid = np.linspace(low - pad, high + pad, 50)

    def line(values: Mapping[str, float]) -> np.ndarray:
        return evaluate(polynomial, grid, *(values[n] for n in spec.names))

    first = {n: data.parameters[n][0] for n in spec.names}
    last = {n: data.parameters[n][-1] for n in spec.names}
    shown = len(spec.x)
    label = (
        _words(data, "data")
        if shown >= spec.samples
        else _words(data, "data_subsample", shown=f"{shown:,}", total=f"{spec.samples:,}")
    )
    ax.plot(spec.x, spec.y, "o", color=COLORS["optimum"], markersize=3.5, label=label)
    ax.plot(
        grid,
        line(first),
        "--",
        color=COLORS["start"],
        linewidth=1,
        label=_words(data, "step_n", step=0),
    )
    ax.plot(
        grid,
        line(last),
        "-",
        color=COLORS["end"],
        linewidth=1.4,
        label=_words(data, "step_n", step=data.steps[-1]),
    )
    if spec.optimum is not None:
        ax.plot(
            grid,
            line(spec.optimum),
            ":",
            color=COLORS["optimum"],
            linewidth=1,
            label=_words(data, "least_squares"),
        )
    if data.diverged_at is not None:
        ax.set_ylim(*_padded(float(np.min(spec.y)), float(np.max(spec.y)), 1.0))
    ax.set_title(_words(data, "fit_title"))
    ax.set_xlabel(_words(data, "z_axis", name="x") if spec.standardized else "x")
    ax.set_ylabel(_words(data, "z_axis", name="y") if spec.standardized else "y")
    _legend_below(figure, ax, columns=2)
    _style(ax)
    return figure


def _padded(low: float, high: float, fraction: float) -> tuple[float, float]:
    pad = max((high - low) * fraction, 0.05 * max(abs(low), abs(high), 1e-3))
    return low - pad, high + pad


def _window(path: np.ndarray, data: PlotData) -> tuple[tuple[float, float], ...]:
    """A view around the start, the optimum and the end of the path; a diverging path
    leaves it (its end is not included)."""
    spec = data.spec
    points = [path[0]]
    if spec.optimum is not None:
        points.append([spec.optimum[name] for name in spec.names])
    if data.diverged_at is None:
        points.append(path[-1])
    corners = np.asarray(points, dtype=float)
    return tuple(
        _padded(float(corners[:, j].min()), float(corners[:, j].max()), 0.35) for j in range(2)
    )


def surface_plot(data: PlotData) -> str | None:
    figure = surface_figure(data)
    if figure is None:
        return None
    first, second = data.spec.names
    return to_svg(figure, "surface", _words(data, "surface_alt", first=first, second=second))


def surface_figure(data: PlotData):  # type: ignore[no-untyped-def]
    spec = data.spec
    if len(spec.names) != 2:
        return None
    from matplotlib.colors import LogNorm

    first, second = spec.names
    path = np.column_stack([np.asarray(data.parameters[n], dtype=float) for n in spec.names])
    (w_low, w_high), (b_low, b_high) = _window(path, data)
    grid_w, grid_b = np.meshgrid(np.linspace(w_low, w_high, 80), np.linspace(b_low, b_high, 60))
    with np.errstate(over="ignore", invalid="ignore"):
        surface = loss_surface(spec, grid_w, grid_b)
    if not np.all(np.isfinite(surface)):  # beyond float64 (data near 1e200): no contours
        return None
    floor = max(float(surface.min()), 1e-12 * max(float(surface.max()), 1e-300))
    surface = np.maximum(surface, floor)
    levels = np.geomspace(floor, float(surface.max()), 13)

    figure = _figure(7.0, 4.2)
    ax = figure.add_subplot()
    filled = ax.contourf(grid_w, grid_b, surface, levels=levels, norm=LogNorm(), cmap="Blues_r")
    ax.contour(grid_w, grid_b, surface, levels=levels, colors="white", linewidths=0.3)
    colorbar = figure.colorbar(filled, ax=ax, format="%.2g", fraction=0.05, pad=0.02)
    colorbar.set_label("L", size=FONT_SIZE)
    colorbar.ax.tick_params(labelsize=FONT_SIZE - 1)
    ax.plot(
        path[:, 0],
        path[:, 1],
        "-",
        color=COLORS["path"],
        linewidth=1.1,
        label=_words(data, "sgd_path"),
    )
    shown = list(data.display)
    push = -np.column_stack([np.asarray(data.gradients[n], dtype=float)[shown] for n in spec.names])
    # Arrows in data units, the longest a fifth of the view in its own direction.
    spans = np.array([w_high - w_low, b_high - b_low])
    reach = float(np.max(np.abs(push) / spans)) if len(shown) else 0.0
    if reach > 0 and math.isfinite(reach):
        ax.quiver(
            path[shown, 0],
            path[shown, 1],
            push[:, 0],
            push[:, 1],
            angles="xy",
            scale_units="xy",
            scale=reach / 0.2,
            color=COLORS["path"],
            width=0.003,
            headwidth=4,
            label=_words(data, "arrows"),
        )
    ax.plot(
        *path[0], "o", color=COLORS["start"], markersize=5, label=_words(data, "step_n", step=0)
    )
    ax.plot(
        *path[-1],
        "s",
        color=COLORS["end"],
        markersize=5,
        label=_words(data, "step_n", step=data.steps[-1]),
    )
    if spec.optimum is not None:
        ax.plot(
            spec.optimum[first],
            spec.optimum[second],
            "*",
            color=COLORS["optimum"],
            markersize=9,
            label=_words(data, "least_squares_optimum"),
        )
    ax.set_xlim(w_low, w_high)
    ax.set_ylim(b_low, b_high)
    ax.set_xlabel(first)
    ax.set_ylabel(second)
    ax.set_title(_words(data, "surface_title", first=first, second=second))
    _legend_below(figure, ax, columns=3)
    _style(ax)
    return figure


def _font_families() -> list[str]:
    """DejaVu Sans, then the CJK font when installed: matplotlib falls back to it for
    Hangul, so labels are measured (and laid out) with the glyphs they will show."""
    from matplotlib import font_manager

    from .fonts import cjk_font

    font = cjk_font()
    if font is None:
        return ["DejaVu Sans"]
    font_manager.fontManager.addfont(str(font))
    return ["DejaVu Sans", font_manager.FontProperties(fname=str(font)).get_name()]


def training_plots(data: PlotData) -> dict[str, str]:
    """Every plot that applies, by name: loss, fit, surface."""
    import matplotlib

    families = _font_families() if data.spec.lang != "en" else ["DejaVu Sans"]
    with matplotlib.rc_context({"font.family": families}):
        plots = {"loss": loss_plot(data), "fit": fit_plot(data), "surface": surface_plot(data)}
    return {name: svg for name, svg in plots.items() if svg is not None}
