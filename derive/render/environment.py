"""The one Jinja2 environment: autoescape, the templates (from the checkout's
templates/ or the installed derive/templates), and the filters that write numbers, math
(LaTeX as inline SVG or HTML text), code and the backward graph."""

from __future__ import annotations

import re
from contextvars import ContextVar
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ..common.errors import RenderError
from ..common.i18n import DEFAULT, Translator, readable_name, translator
from ..common.numbers import exact_float, key_number, latex_number, plain, prose_number
from ..symbolic.printing import subscripted
from .mathsvg import latex_to_svg


def _template_root() -> Path:
    # A source checkout keeps the templates next to the package; an installed
    # package carries them as derive/templates.
    checkout = Path(__file__).resolve().parents[2] / "templates"
    if (checkout / "report.html.j2").is_file():
        return checkout
    return Path(str(resources.files("derive") / "templates"))


# How formulas draw their glyphs while a page is rendered: "paths" (plain paths, each
# formula on its own: handouts, the PDF) or "shared" (only <use>; derive.render.glyphs
# defines them once: the HTML file and the Jupyter view).
GLYPH_MODE: ContextVar[str] = ContextVar("derive_glyph_mode", default="paths")


# A parameter name put into LaTeX as it is written, W_10, would read W_{1}0: an
# unbraced subscript takes one character. Every multi-digit one is meant whole.
_BARE_SUBSCRIPT = re.compile(r"_(\d{2,})")


def _formula(latex: str, label: str | None, display: bool) -> Markup:
    mode = GLYPH_MODE.get()
    latex = _BARE_SUBSCRIPT.sub(r"_{\1}", latex)
    return Markup(latex_to_svg(latex, label, display=display, shared=mode == "shared"))


def per_quantity(values: Any) -> str:
    """{"L": 26, "W_1": 10014, ..., "W_10": 10014, "b": 14} as running text, equal
    neighbours named once: "26 (L), 10014 (dL/dW₁ … dL/dW₁₀), 14 (dL/db)"."""
    groups: list[tuple[Any, list[str]]] = []
    for key, value in values.items():
        name = readable_name("L" if key == "L" else f"dL/d{key}")
        if groups and groups[-1][0] == value:
            groups[-1][1].append(name)
        else:
            groups.append((value, [name]))
    return ", ".join(f"{value} ({_span(names)})" for value, names in groups)


def _span(names: list[str]) -> str:
    """One name, two, or the first and last of a run."""
    return ", ".join(names) if len(names) <= 2 else f"{names[0]} … {names[-1]}"


# pass_context keeps Jinja from rendering a formula of constant LaTeX once, when it
# compiles the template, in whatever mode is set then.
@jinja2.pass_context
def _math(_: Any, latex: str, label: str | None = None) -> Markup:
    return _formula(latex, label, False)


@jinja2.pass_context
def _display_math(_: Any, latex: str, label: str | None = None) -> Markup:
    return _formula(latex, label, True)


def _backward_graph(facts: Any, t: Translator | None = None) -> Markup:
    from .graph import draw

    return Markup(draw(facts, t))


def _html_math(latex: str) -> Markup:
    from .mathhtml import latex_to_html

    return Markup(latex_to_html(latex))


def _code(text: str) -> Markup:
    return Markup("<code>{}</code>").format(text)


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _css_counter(text: str) -> Markup:
    """'page {page} of {pages}' -> the CSS content value "page " counter(page) " of " ..."""
    import string

    parts = []
    for literal, name, _, _ in string.Formatter().parse(str(text)):
        if literal:
            parts.append(_css_string(literal))
        if name:
            if name not in {"page", "pages"}:
                raise RenderError(f"unknown page counter {name!r} in the catalogue")
            parts.append(f"counter({name})")
    return Markup(" ".join(parts))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_template_root())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = plain
    env.filters["keynum"] = key_number
    env.filters["exact"] = exact_float
    env.filters["latexnum"] = latex_number
    env.filters["prose"] = lambda value, digits=10: Markup(prose_number(value, digits))
    env.filters["math"] = _math
    env.filters["sub"] = subscripted
    env.filters["sub_text"] = readable_name
    env.filters["per_quantity"] = per_quantity
    env.filters["displaymath"] = _display_math
    env.filters["backward_graph"] = _backward_graph
    env.filters["code"] = _code
    # Jinja's capitalize lowers the rest too ("Derivative of the huber function")
    env.filters["first_upper"] = lambda text: text[:1].upper() + text[1:]
    env.filters["hmath"] = _html_math
    env.filters["css_counter"] = _css_counter
    env.globals["t"] = translator(DEFAULT)  # a render call passes the language it wants
    return env


def render_template(name: str, lang: str = DEFAULT, **context: Any) -> str:
    """A template with the translator `t` of the language and the version in its context."""
    from ..common.version import __version__

    t: Translator = translator(lang)
    return environment().get_template(name).render(t=t, version=__version__, **context)
