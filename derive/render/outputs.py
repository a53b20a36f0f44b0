"""A report in memory: its HTML page (with the training plots), its PDF and its JSON,
all rendered before anything is written (render/files writes them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from markupsafe import Markup

from ..common.i18n import DEFAULT
from .environment import render_template
from .pdf import to_pdf

if TYPE_CHECKING:
    from ..report.document import Report
    from .jsonfile import EncodedSamples

FORMATS = ("html", "pdf", "json")


def training_plots(report: Report, lang: str = DEFAULT) -> dict[str, Markup]:
    """The training plots as inline SVG, by name (none without training)."""
    if report.training is None:
        return {}
    import dataclasses

    from .plotdata import plot_data
    from .plots import training_plots

    data = plot_data(report.training)
    data = dataclasses.replace(data, spec=dataclasses.replace(data.spec, lang=lang))
    return {name: Markup(svg) for name, svg in training_plots(data).items()}


def to_html(report: Report, lang: str = DEFAULT, plots: Mapping[str, Markup] | None = None) -> str:
    """The HTML file: the formulas' glyphs defined once (:mod:`derive.render.glyphs`);
    :func:`to_pdf` prints it with plain paths."""
    from .environment import GLYPH_MODE
    from .glyphs import define_once

    if plots is None:
        plots = training_plots(report, lang)
    token = GLYPH_MODE.set("shared")
    try:
        page = render_template("report.html.j2", lang, report=report, plots=plots)
    finally:
        GLYPH_MODE.reset(token)
    return define_once(page)


def render_all(
    report: Report,
    formats: Iterable[str],
    progress: Callable[[str], None] = lambda _: None,
    lang: str = DEFAULT,
    plots: Callable[[], Mapping[str, str]] | None = None,
    samples_json: Callable[[], EncodedSamples] | None = None,
) -> dict[str, bytes]:
    """Every requested format, in memory: nothing is written until all have succeeded.

    `plots` supplies the training plots when they were drawn elsewhere (as inline SVG
    by name); without it they are drawn here. `samples_json`, likewise, supplies the
    sample arrays of a large report encoded as JSON elsewhere (see
    :func:`derive.render.jsonfile.to_json`).
    """
    from .jsonfile import to_json

    formats = list(formats)
    contents: dict[str, bytes] = {}
    html: str | None = None
    if "html" in formats or "pdf" in formats:
        progress("plots")
        drawn = (
            {name: Markup(svg) for name, svg in plots().items()}
            if plots is not None and report.training is not None
            else training_plots(report, lang)
        )
        progress("html")
        html = to_html(report, lang, drawn)
    if "html" in formats:
        contents["html"] = html.encode("utf-8")  # type: ignore[union-attr]
    if "pdf" in formats:
        progress("pdf")
        contents["pdf"] = to_pdf(html)  # type: ignore[arg-type]
    if "json" in formats:
        encoded = samples_json() if samples_json is not None else None
        contents["json"] = to_json(report, encoded).encode("utf-8")
    return contents
