"""The font with Hangul (and the rest of CJK), shipped by a PyPI package.

The PDF embeds it through an @font-face the URL fetcher serves (derive/render.py);
matplotlib uses it as the fallback for plot labels (derive/plots.py).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

CJK_FONT_PACKAGE = "cvttf_NotoSansCJK_Regular"
CJK_FAMILY = "Noto Sans CJK KR"


@cache
def cjk_font() -> Path | None:
    """The font file of the CJK font package, or None when it is not installed."""
    try:
        folder = resources.files(CJK_FONT_PACKAGE)
    except ModuleNotFoundError:
        return None
    fonts = sorted(
        Path(str(item))
        for item in folder.iterdir()
        if item.name.lower().endswith((".otf", ".ttf", ".ttc"))
    )
    return fonts[0] if fonts else None
