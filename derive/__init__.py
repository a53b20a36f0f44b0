"""derive: explain, with proof, how an automatic-differentiation tape arrives at its numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common.version import __version__
from .report import display as _display

__all__ = ["__version__", "build_report"]

if TYPE_CHECKING:
    from .report.build import build_report


def __getattr__(name: str) -> Any:
    # Importing derive stays cheap; SymPy and friends load when a report is built.
    if name == "build_report":
        from .report.build import build_report

        return build_report
    raise AttributeError(f"module 'derive' has no attribute {name!r}")


def _notebook_html(report: Any) -> str:
    # A Report in a Jupyter cell: render/ reads the facts, report/ never imports it.
    from .render.notebook import to_notebook_html

    return to_notebook_html(report)


_display.use(_notebook_html)
