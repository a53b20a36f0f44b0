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


# Bold headings in Korean need a bold face: the PDF uses it when this package is
# installed (pip install cvttf-notosanscjk-bold, 28 MB); without it they print regular.
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
