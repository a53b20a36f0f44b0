"""The font with Hangul (and the rest of CJK), shipped by a PyPI package.

The PDF embeds it through an @font-face the URL fetcher serves (derive/render.py);
matplotlib uses it as the fallback for plot labels (derive/plots.py).
"""

from __future__ import annotations

import io
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

CJK_FONT_PACKAGE = "cvttf_NotoSansCJK_Regular"
CJK_FAMILY = "Noto Sans CJK KR"


# Bold headings, rule names and verdicts in Korean need a bold face (a dependency, 28 MB):
# WeasyPrint does not embolden the regular one. Without it (an install that left it
# out) they print regular.
CJK_BOLD_PACKAGE = "cvttf_NotoSansCJK_Bold"


@cache
def cjk_font(package: str = CJK_FONT_PACKAGE) -> Path | None:
    """The font file of a CJK font package, or None when it is not installed."""
    try:
        folder = resources.files(package)
    except ModuleNotFoundError:
        return None
    fonts = sorted(
        Path(str(item))
        for item in folder.iterdir()
        if item.name.lower().endswith((".otf", ".ttf", ".ttc"))
    )
    return fonts[0] if fonts else None


@lru_cache(maxsize=4)
def font_subset(font: Path, characters: str) -> bytes:
    """The font cut down to `characters` (sorted, each once), keeping their shapes,
    metrics and layout rules.

    The CJK font holds 65,000 glyphs in 16 MB. WeasyPrint subsets every font it embeds
    with fontTools (HarfBuzz's subsetter is an optional system library), and on this font
    that took about 10 s of a Korean report's 24, once for each style it printed; cut to
    the page's few hundred characters first (under a second), the font is quick to
    subset again. Hinting goes: a PDF's outlines are scaled by the viewer, not hinted.
    """
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.hinting = False
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.glyph_names = False
    with TTFont(str(font), lazy=True) as source:
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=[ord(c) for c in characters])
        subsetter.subset(source)
        buffer = io.BytesIO()
        source.save(buffer)
    return buffer.getvalue()
