"""Each glyph of the formulas defined once per page, drawn with ``<use>`` everywhere.

ziamath writes a glyph's outline into every formula that shows it: the report's HTML
carried the same few dozen outlines thousands of times (1.7 MB of its 2.3 MB). Here a
formula keeps only its ``<use href="#gN">`` elements; :func:`define_once` puts each
glyph's ``<symbol id="gN">`` once into one hidden ``<svg>`` at the top of the page, in
the order of first use (same page, same bytes). Browsers resolve ``<use>`` across the
inline SVGs of a document.

WeasyPrint does not: it reads each inline ``<svg>`` as a document of its own. The PDF
is printed from :func:`plain_paths` of the page, every formula back in its plain form
(one path per colour, which WeasyPrint also draws fastest), so the PDF is the same as
before, byte for byte.
"""

from __future__ import annotations

import hashlib
import re

from ..common.errors import RenderError

# A glyph without outline (a space) is an empty <symbol ... />.
SYMBOL = re.compile(r'<symbol id="([^"]+)"([^>]*?/>|[^>]*>.*?</symbol>)', re.S)
_DECIMALS = re.compile(r"-?\d+\.\d+")
PATH_DATA = re.compile(r'\bd="([^"]*)"')
_USE = re.compile(
    r'<use href="#(g\d+|a[0-9a-f]{10})" x="([-\d.]+)" y="([-\d.]+)" width="([-\d.]+)"'
    r' height="([-\d.]+)" fill="([^"]+)" />'
)
_FONT_ID = re.compile(r"STIXTwoMathRegular_(\d+)")
_ANY_REFERENCE = re.compile(r'href="#([^"]+)"')
_REFERENCE = re.compile(r'href="#(g\d+|a[0-9a-f]{10})"')
_FORMULA = re.compile(r'<svg [^>]*class="math[^"]*"[^>]*>.*?</svg>', re.S)
GLYPHS_ELEMENT = re.compile(r'<svg [^>]*class="derive-glyphs"[^>]*>.*?</svg>\n?', re.S)

# Filled as formulas are rendered: glyph id -> its <symbol> (as many as the font has
# glyphs), and each formula's shared form -> its plain form, the most recently used
# last. A long Jupyter session renders formulas without end, so the second is capped:
# a formula dropped from it is printed from its own glyph definitions instead, which
# looks the same (see plain_paths).
_DEFINITIONS: dict[str, str] = {}
_PLAIN: dict[str, str] = {}
PLAIN_LIMIT = 20_000


def _remember_plain(shared: str, plain: str) -> None:
    _PLAIN.pop(shared, None)
    _PLAIN[shared] = plain
    while len(_PLAIN) > PLAIN_LIMIT:
        del _PLAIN[next(iter(_PLAIN))]


def two_decimals(text: str) -> str:
    """A number with two decimals at most, no trailing zeros ('-0.001' -> '0').

    Formulas are drawn 16 units to the em, so 1/3200 em off at most: far below a pixel.
    """
    number = f"{float(text):.2f}".rstrip("0").rstrip(".")
    return "0" if number == "-0" else number


def short_path(data: re.Match[str]) -> str:
    """Path data with two decimals and single spaces."""
    numbers = _DECIMALS.sub(lambda number: two_decimals(number.group(0)), data.group(1))
    return 'd="' + " ".join(numbers.split()) + '"'


def _compact(use: re.Match[str]) -> str:
    """A <use> in fewer bytes: two decimals, and black (the initial fill) not said."""
    glyph, fill = use.group(1), use.group(6)
    x, y, width, height = (two_decimals(use.group(k)) for k in (2, 3, 4, 5))
    paint = "" if fill == "black" else f' fill="{fill}"'
    return f'<use href="#{glyph}" x="{x}" y="{y}" width="{width}" height="{height}"{paint}/>'


def share(with_symbols: str, plain: str) -> str:
    """The formula's <use> elements without its <symbol>s, which are remembered.

    A glyph of the font is named by its number (g3355); a glyph that ziamath assembles
    from parts (a tall bracket) by its outline (a + 10 hex digits of its SHA-1), as
    ziamath's own ids for those could name two different assemblies alike.
    """
    names: dict[str, str] = {}

    def remember(match: re.Match[str]) -> str:
        original = match.group(1)
        outline = PATH_DATA.sub(short_path, match.group(2)).replace(" />", "/>")
        number = _FONT_ID.fullmatch(original)
        glyph = (
            f"g{number.group(1)}"
            if number
            else "a" + hashlib.sha1(outline.encode()).hexdigest()[:10]
        )
        names[original] = glyph
        definition = f'<symbol id="{glyph}"{outline}'
        if _DEFINITIONS.setdefault(glyph, definition) != definition:
            raise RenderError(f"two outlines for the glyph {original}")
        return ""

    body = SYMBOL.sub(remember, with_symbols)
    body = _ANY_REFERENCE.sub(lambda m: f'href="#{names.get(m.group(1), m.group(1))}"', body)
    shared = _USE.sub(_compact, body)
    _remember_plain(shared, plain)
    return shared


def define_once(page: str) -> str:
    """The page with one hidden <svg> after <body> that defines every glyph it uses (a
    fragment without <body>, the Jupyter view's <div>, gets it inside its first element,
    so that the fragment stays one element)."""
    used = dict.fromkeys(_REFERENCE.findall(page))
    if not used:
        return page
    definitions = "".join(_DEFINITIONS[glyph] for glyph in used)
    element = (
        '<svg xmlns="http://www.w3.org/2000/svg" class="derive-glyphs" aria-hidden="true"'
        ' style="position:absolute;width:0;height:0;overflow:hidden">'
        f"<defs>{definitions}</defs></svg>\n"
    )
    body = page.find("<body>")
    start = page.index(">") + 1 if body < 0 else body + len("<body>\n")
    return page[:start] + element + page[start:]


def plain_paths(page: str) -> str:
    """The page as WeasyPrint can draw it: no shared glyphs, every formula in its
    plain form (a page without shared glyphs is returned as it is). A formula not
    rendered in this process gets the definitions of its own glyphs instead."""
    glyphs = GLYPHS_ELEMENT.search(page)
    if glyphs is None:
        return page
    page = page[: glyphs.start()] + page[glyphs.end() :]
    defined = {match.group(1): match.group(0) for match in SYMBOL.finditer(glyphs.group(0))}

    def plain(match: re.Match[str]) -> str:
        formula = match.group(0)
        if formula in _PLAIN:
            _remember_plain(formula, _PLAIN[formula])
            return _PLAIN[formula]
        own = "".join(defined[glyph] for glyph in dict.fromkeys(_REFERENCE.findall(formula)))
        opening = formula.index(">") + 1
        return formula[:opening] + own + formula[opening:]

    return _FORMULA.sub(plain, page)
