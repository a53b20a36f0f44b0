"""A sample the tape may put on the other side of a kink of the loss: the fact a check
carries to say why it is inconclusive (found by :mod:`derive.exact.kinks`)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..common.i18n import Message


@dataclass(frozen=True)
class Kink:
    """A sample whose exact residual lies within its rounding-error bound of a kink."""

    sample: int  # 1-based
    residual: Fraction
    bound: Fraction
    at: Fraction
    switch: bool = False  # a branch switch (Huber's +-delta), not a kink of the loss

    def reason(self, quantity: str) -> Message:
        return Message.of(
            "reason.switch" if self.switch else "reason.kink",
            quantity=quantity,
            sample=self.sample,
            residual=f"{float(self.residual):.3g}",
            bound=f"{float(self.bound):.3g}",
            kink=f"{float(self.at):g}",
        )
