"""derive: explain, with proof, how an automatic-differentiation tape arrives at its numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "build_report"]

if TYPE_CHECKING:
    from .report.build import build_report


def __getattr__(name: str) -> Any:
    # Importing derive stays cheap; SymPy and friends load when a report is built.
    if name == "build_report":
        from .report.build import build_report

        return build_report
    raise AttributeError(f"module 'derive' has no attribute {name!r}")
