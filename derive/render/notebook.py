"""The report inside a Jupyter notebook: a fragment that leaves the notebook alone.

The HTML file is a whole page whose stylesheet styles ``html``, ``body``, ``h1``,
``table``; put into a notebook as it is, it would restyle the notebook. The fragment
here is one ``<div class="derive-report">`` with the same stylesheet (style.css, the
one source of the styles) rewritten so that every selector applies inside that
element only. Nesting would say this in CSS itself, but WeasyPrint does not read
nested CSS, so the selectors are prefixed here, for the fragment alone. The rules
for print (``@page``, ``@media print``) are left out: a notebook is not printed.

The fragment is as light as the HTML file: its formulas draw each glyph with ``<use>``
of one ``<symbol>`` per glyph, defined once for the whole fragment
(:func:`derive.render.glyphs.define_once`, the same as for the file).
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from markupsafe import Markup

from ..common.i18n import DEFAULT

if TYPE_CHECKING:
    from ..report.document import Report

SCOPE = ".derive-report"  # the fragment's element; every style applies inside it
_ROOTS = frozenset({":root", "html", "body"})  # what stands for the page: the element
_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _closing_brace(css: str, opening: int) -> int:
    """The index of the brace that closes the one at `opening`."""
    depth = 0
    for index in range(opening, len(css)):
        if css[index] == "{":
            depth += 1
        elif css[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError("unbalanced braces in the stylesheet")


def _split_selectors(prelude: str) -> list[str]:
    """'a, b:is(c, d)' -> ['a', 'b:is(c, d)']: commas inside parentheses stay."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(prelude):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(prelude[start:index].strip())
            start = index + 1
    parts.append(prelude[start:].strip())
    return [part for part in parts if part]


def _scoped_selector(selector: str, scope: str) -> str:
    return scope if selector in _ROOTS else f"{scope} {selector}"


def _for_print(prelude: str) -> bool:
    return prelude.startswith("@page") or (
        prelude.startswith("@media") and "print" in prelude and "screen" not in prelude
    )


def scope_css(css: str, scope: str = SCOPE) -> str:
    """Every rule of `css` limited to the element `scope`, one rule a line; print
    rules and other at-rules that apply to a whole document (@page, @font-face)
    are left out, other @media blocks are kept with their rules scoped."""
    css = _COMMENT.sub("", css)
    rules: list[str] = []
    position = 0
    while (opening := css.find("{", position)) >= 0:
        closing = _closing_brace(css, opening)
        prelude = " ".join(css[position:opening].split())
        body = " ".join(css[opening + 1 : closing].split())
        position = closing + 1
        if prelude.startswith("@media") and not _for_print(prelude):
            rules.append(f"{prelude} {{\n{scope_css(css[opening + 1 : closing], scope)}\n}}")
        elif not prelude.startswith("@"):
            selectors = ", ".join(_scoped_selector(s, scope) for s in _split_selectors(prelude))
            rules.append(f"{selectors} {{ {body} }}")
    return "\n".join(rules)


@cache
def notebook_css(lang: str = DEFAULT) -> str:
    """style.css, rendered for the language and scoped to the fragment's element."""
    from .environment import render_template

    return scope_css(render_template("style.css", lang))


def to_notebook_html(report: Report, lang: str = DEFAULT) -> str:
    """The report as one styled <div> for Jupyter (see the module's docstring)."""
    from .environment import GLYPH_MODE, render_template
    from .glyphs import define_once
    from .outputs import training_plots

    token = GLYPH_MODE.set("shared")
    try:
        html = render_template(
            "notebook.html.j2",
            lang,
            report=report,
            plots=training_plots(report, lang),
            css=Markup(notebook_css(lang)),
        )
    finally:
        GLYPH_MODE.reset(token)
    return define_once(html)
