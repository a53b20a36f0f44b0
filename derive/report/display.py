"""How a Report shows itself in Jupyter, with report/ knowing no HTML.

The HTML comes from render/, which reads the facts; report/ must not import it. The
package's front, derive/__init__.py, hands a renderer to :func:`use` when derive is
imported (which importing any part of it does first), so the arrow stays render ->
report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_renderer: Callable[[Any], str] | None = None


def use(renderer: Callable[[Any], str]) -> None:
    """Show reports with `renderer` (a Report -> its HTML for a notebook cell)."""
    global _renderer
    _renderer = renderer


def html(report: Any) -> str:
    if _renderer is None:
        raise RuntimeError("no renderer for reports: derive/__init__.py installs one")
    return _renderer(report)
