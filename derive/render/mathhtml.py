"""Simple LaTeX as HTML text: x_{1}, r_{1}^{2}, \\hat{y}, \\cdot, \\frac{a}{b} written a/b.

Handouts print dozens of short formulas per page; as text they cost a fraction of the
SVG paths ziamath draws (WeasyPrint lays out and writes a 30-page class set several
times faster). Anything outside this small subset raises ValueError, so nothing is
silently printed wrong; such formulas go to ziamath.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

_SYMBOLS = {
    r"\cdot": " · ",
    r"\eta": "η",
    r"\delta": "δ",
    r"\partial": "∂",
    r"\sum": "Σ",
    r"\left(": "(",
    r"\right)": ")",
    r"\left[": "[",
    r"\right]": "]",
    r"\left|": "|",
    r"\right|": "|",
    r"\quad": "\u2003",
}
MINUS = "\u2212"
_ACCENTS = {r"\hat": "\u0302"}
_TOKEN = re.compile(r"\\[A-Za-z]+[(\[\])|]?|[A-Za-z]|\d+(?:\.\d+)?|[{}_^+\-=()\[\],.]|\s+|.")


def _group(tokens: list[str], start: int) -> tuple[list[str], int]:
    """The tokens of the {...} group at `start` (or the single token there)."""
    if tokens[start] != "{":
        return [tokens[start]], start + 1
    depth, end = 1, start + 1
    while depth:
        if end >= len(tokens):
            raise ValueError("unbalanced braces")
        depth += {"{": 1, "}": -1}.get(tokens[end], 0)
        end += 1
    return tokens[start + 1 : end - 1], end


def _convert(tokens: list[str]) -> str:
    out: list[str] = []
    k = 0
    while k < len(tokens):
        token = tokens[k]
        if token.isspace():
            k += 1
            continue
        if token in ("_", "^"):
            body, k = _group(tokens, k + 1)
            tag = "sub" if token == "_" else "sup"
            out.append(f"<{tag}>{_convert(body).replace(' = ', '=')}</{tag}>")
            continue
        if token == r"\frac":
            numerator, k = _group(tokens, k + 1)
            denominator, k = _group(tokens, k)
            out.append(f"{_convert(numerator)}/{_convert(denominator)}")
            continue
        if token == r"\operatorname":  # a named function, upright: sign
            body, k = _group(tokens, k + 1)
            out.append(html.escape("".join(body)))
            continue
        if token in _ACCENTS:
            body, k = _group(tokens, k + 1)
            inner = _convert(body)
            if inner.endswith("</i>"):  # the accent goes on the letter, inside its <i>
                inner = inner[: -len("</i>")] + _ACCENTS[token] + "</i>"
            else:
                inner += _ACCENTS[token]
            out.append(inner)
            continue
        if token == "{":
            body, k = _group(tokens, k)
            out.append(_convert(body))
            continue
        k += 1
        if token in _SYMBOLS:
            out.append(_SYMBOLS[token])
        elif token.startswith("\\"):
            raise ValueError(f"no HTML for {token}")
        elif token.isalpha():
            out.append(f"<i>{token}</i>")
        elif token == "-" and (not out or out[-1].endswith(("(", "= "))):
            out.append(MINUS)  # a sign, not a subtraction
        elif token in "+-=":
            out.append({"-": f" {MINUS} ", "+": " + ", "=": " = "}[token])
        else:
            out.append(html.escape(token))
    return "".join(out)


@lru_cache(maxsize=4096)
def latex_to_html(latex: str) -> str:
    """The formula as HTML (inline text in a span.m); ValueError outside the subset."""
    text = _convert(_TOKEN.findall(latex))
    text = re.sub(r"\s{2,}", " ", text).strip()
    return f'<span class="m">{text}</span>'
