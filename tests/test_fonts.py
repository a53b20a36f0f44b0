"""The CJK font is served to WeasyPrint cut down to the document's characters: the same
glyphs, outlines and widths for those characters, and far fewer glyphs to subset again."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from fontTools.ttLib import TTFont

from derive.render.fonts import cjk_font, font_subset
from derive.render.pdf import make_fetcher

TEXT = "학습률 0.01, 기울기 ∂L/∂W = \u22121.39 (표본 2개)"  # with a minus sign


def _glyph(font: TTFont, character: str) -> tuple[int, bytes]:
    """The advance width and the outline (its drawing, as recorded commands) of a character."""
    from fontTools.pens.recordingPen import RecordingPen

    name = font.getBestCmap()[ord(character)]
    pen = RecordingPen()
    font.getGlyphSet()[name].draw(pen)
    return font["hmtx"][name][0], repr(pen.value).encode()


@pytest.fixture(scope="module")
def fonts() -> Iterator[tuple[TTFont, TTFont]]:
    path = cjk_font()
    if path is None:
        pytest.skip("the CJK font package is not installed")
    subset = TTFont(io.BytesIO(font_subset(path, "".join(sorted(set(TEXT))))))
    with TTFont(str(path), lazy=True) as full:
        yield full, subset


def _body(response: Any) -> bytes:
    """The bytes of WeasyPrint's fetcher response (a file-like object) or of a plain dict."""
    return response["string"] if isinstance(response, dict) else response.read()


def test_the_subset_has_every_character_of_the_text_drawn_the_same(fonts):
    full, subset = fonts
    covered = [c for c in set(TEXT) if ord(c) in full.getBestCmap()]
    assert "학" in covered and "W" in covered
    for character in covered:
        assert _glyph(subset, character) == _glyph(full, character), character
    assert set(subset.getBestCmap()) == {ord(c) for c in covered}
    assert len(subset.getGlyphOrder()) < 100 < len(full.getGlyphOrder())


def test_the_fetcher_serves_the_font_cut_to_the_document():
    path = cjk_font()
    if path is None:
        pytest.skip("the CJK font package is not installed")
    fetcher = make_fetcher()
    whole = _body(fetcher.fetch(path.as_uri()))
    fetcher.only_for(TEXT)
    body = _body(fetcher.fetch(path.as_uri()))
    assert len(body) < len(whole) / 50
    assert ord("학") in TTFont(io.BytesIO(body)).getBestCmap()
