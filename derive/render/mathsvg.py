"""LaTeX to inline SVG that sits on the text baseline (ziamath, no TeX installation).

ziamath puts the baseline at y = 0 of the viewBox, so the part below the baseline
is ``viewBox.y + height``. Sizes are given in em, and the SVG is shifted down by
that depth with ``vertical-align``, so a formula lines up with the text around it
in the browser and in WeasyPrint alike.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import ziamath

from ..common.errors import RenderError

# svg2=False writes glyphs as plain paths, without <symbol>/<use> ids that would
# repeat across formulas on one page (invalid HTML) and slow rendering down.
ziamath.config.svg2 = False

FONT_SIZE_PX = 16.0  # the size ziamath draws at; its units are converted to em below
# STIX Two Math looks smaller than the text fonts at the same size; enlarge it slightly.
MATH_SCALE = 1.08
_VIEWBOX = re.compile(r'viewBox="([-\d.]+) ([-\d.]+) ([-\d.]+) ([-\d.]+)"')
_SIZE_ATTRIBUTES = re.compile(r' width="[-\d.]+" height="[-\d.]+"')
_UNKNOWN_COMMAND = re.compile(r">\\[A-Za-z]+<")
_GLYPH = re.compile(r'<path d="([^"]*)" fill="([^"]*)" />')


def _merge_glyphs(svg: str) -> str:
    """One path per colour instead of one per glyph.

    A formula's glyphs do not overlap, so the picture is the same; a PDF renderer
    handles one long path far faster than dozens of short elements (each is an
    element to style and a node to draw), and a report has about a hundred formulas.
    """
    paths: dict[str, list[str]] = {}
    for outline, fill in _GLYPH.findall(svg):
        paths.setdefault(fill, []).append(outline.strip())
    if sum(len(group) for group in paths.values()) < 2:
        return svg
    first = _GLYPH.search(svg)
    assert first is not None
    merged = "".join(
        f'<path d="{" ".join(outlines)}" fill="{fill}" />' for fill, outlines in paths.items()
    )
    rest = _GLYPH.sub("", svg[first.start() :])
    return svg[: first.start()] + merged + rest


@contextmanager
def _glyph_symbols(on: bool) -> Iterator[None]:
    """ziamath's svg2 mode: each glyph once as a <symbol>, drawn with <use>."""
    before = ziamath.config.svg2
    ziamath.config.svg2 = on
    try:
        yield
    finally:
        ziamath.config.svg2 = before


@lru_cache(maxsize=4096)
def latex_to_svg(
    latex: str,
    label: str | None = None,
    display: bool = False,
    shared: bool = False,
) -> str:
    """Inline SVG markup for `latex`, sized in em and aligned on the baseline.

    `label` is the spoken form for screen readers and PDF alt text (the LaTeX if
    not given). Raises RenderError for LaTeX that ziamath cannot read, including
    commands it does not know (which it would otherwise print as literal text).
    `shared` draws the glyphs with <use> only, of symbols defined once for the whole
    page (see :mod:`derive.render.glyphs`): the HTML file and the Jupyter view; plain
    paths repeat every glyph's outline in every formula (handouts, the PDF).
    """
    plain, with_symbols = _render(latex, label, display)
    if shared:
        from .glyphs import share

        return share(with_symbols, plain)
    return plain


@lru_cache(maxsize=4096)
def _render(latex: str, label: str | None, display: bool) -> tuple[str, str]:
    """The formula with plain paths and with glyph symbols, from one layout (laying
    out costs ziamath ten times as much as writing the SVG)."""
    try:
        with _glyph_symbols(False):
            math = ziamath.Latex(latex, size=FONT_SIZE_PX, title=label or latex)
            mathml = ET.tostring(math.mathml, encoding="unicode")
            svgs = [math.svg()]
        with _glyph_symbols(True):
            svgs.append(math.svg())
    except Exception as error:  # ziamath signals malformed input with bare asserts
        raise RenderError(f"cannot render formula {latex!r}: {error!r}") from error
    unknown = _UNKNOWN_COMMAND.search(mathml)
    if unknown:
        raise RenderError(f"unknown LaTeX command {unknown.group(0)[1:-1]} in {latex!r}")
    match = _VIEWBOX.search(svgs[0])
    if match is None:  # pragma: no cover - ziamath always writes a viewBox
        raise RenderError(f"no viewBox in the SVG for {latex!r}")
    _, top, width, height = (float(v) for v in match.groups())
    depth = top + height
    em = MATH_SCALE / FONT_SIZE_PX
    style = (
        f"width:{width * em:.3f}em;height:{height * em:.3f}em;vertical-align:{-depth * em:.3f}em"
    )
    css_class = "math display" if display else "math"
    attributes = (
        f' class="{css_class}" role="img" aria-label="{html.escape(label or latex)}"'
        f' style="{style}"'
    )
    plain, with_symbols = _merge_glyphs(svgs[0]), svgs[1]
    return (
        _SIZE_ATTRIBUTES.sub(lambda _: attributes, plain, count=1),
        _SIZE_ATTRIBUTES.sub(lambda _: attributes, with_symbols, count=1),
    )
