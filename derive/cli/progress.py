"""A one-line progress bar for the terminal; silent when output goes elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24

# Where each stage starts, as a fraction of the whole run (roughly its share of the time).
STAGES = {
    "starting": 0.0,
    "deriving": 0.05,
    "training": 0.4,
    "checking": 0.45,
    "plots": 0.55,
    "html": 0.57,
    "pdf": 0.6,
    "writing": 0.98,
}
LABELS = {
    "starting": "starting TensorFlow in the background",
    "deriving": "deriving with SymPy, rendering the formulas",
    "training": "waiting for TensorFlow's training run",
    "checking": "checking every step",
    "plots": "drawing the plots",
    "html": "rendering HTML",
    "pdf": "printing the PDF",
    "writing": "writing files",
}


class Progress:
    """``[######------------------]  25%  training with TensorFlow``, redrawn in place."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._shown = False
        self._last = 0.0

    @classmethod
    def quiet(cls) -> Progress:
        return cls(enabled=False)

    def stage(self, name: str) -> None:
        self._draw(STAGES.get(name, 0.0), LABELS.get(name, name))

    def steps(self, done: int, total: int) -> None:
        """Progress within the checking stage."""
        now = time.monotonic()
        if done < total and now - self._last < 0.05:
            return
        self._last = now
        start, end = STAGES["checking"], STAGES["plots"]
        fraction = start + (end - start) * (done / total if total else 1.0)
        self._draw(fraction, f"checking step {done} of {total}")

    def _draw(self, fraction: float, label: str) -> None:
        if not self.enabled:
            return
        filled = round(WIDTH * fraction)
        bar = "#" * filled + "-" * (WIDTH - filled)
        self.stream.write(f"\r\x1b[2K[{bar}] {fraction:4.0%}  {label}")
        self.stream.flush()
        self._shown = True
        _showing[:] = [self]

    def clear(self) -> None:
        """Remove the bar, so that ordinary output starts on a clean line."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False
        if _showing and _showing[0] is self:
            _showing.clear()


# The bar on the terminal now, if any: an error or an interruption must not print its
# one line behind a half-drawn bar.
_showing: list[Progress] = []


def erase_bar() -> None:
    """Remove whichever bar is showing (the command line calls this before an error)."""
    if _showing:
        _showing[0].clear()
