"""What is known of the order in which the tape added up its sums: the machine, the
TensorFlow version, the intra-op thread count, and whether a run-time sum matched the
emulation of TensorFlow's CPU kernels (derive/tape/summation.py) bit for bit.

No TensorFlow here: the draft assumes an order before the tape has answered."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import dataclass

from .summation import reduction_depth

# Where the order of additions was read and reproduced bit for bit (tests/test_summation.py).
KNOWN_TENSORFLOW = "2.21"
KNOWN_MACHINES = frozenset({"x86_64", "AMD64"})


@dataclass(frozen=True)
class Order:
    """What is known about how the tape added up its sums.

    `threads`: the intra-op thread count of TensorFlow's CPU device (None: not known).
    `confirmed`: a sum of the tape's own per-sample terms, made with ``tf.reduce_sum``
    at run time, equal bit for bit to the emulation (None: not tried, e.g. under XLA).
    `assumed`: the draft's guess before TensorFlow has answered.
    """

    mode: str = "eager"
    threads: int | None = None
    tensorflow_version: str = ""
    machine: str = ""
    confirmed: bool | None = None
    assumed: bool = False

    @property
    def reason(self) -> str:
        """Why the bound is what it is: "cpu-order" (TensorFlow's CPU order), or why
        the order-free n - 1 is used: "xla", "unknown" (no tape information),
        "platform", "version", "mismatch" (the run-time sum did not match)."""
        if self.mode == "xla":
            return "xla"
        return self.kernel_reason

    @property
    def kernel_reason(self) -> str:
        """As `reason`, for TensorFlow's own kernels (the eager node-by-node replay)."""
        if self.threads is None:
            return "unknown"
        if self.machine not in KNOWN_MACHINES:
            return "platform"
        if not self.tensorflow_version.startswith(KNOWN_TENSORFLOW + "."):
            return "version"
        if self.confirmed is False:
            return "mismatch"
        return "cpu-order"

    @property
    def known(self) -> bool:
        return self.reason == "cpu-order"

    def depth(self, n: int, dtype: str, *, kernels: bool = False) -> int:
        """d for a sum of n terms; `kernels`: for TensorFlow's kernels run eagerly,
        whatever the mode (the backward section's replay)."""
        known = self.kernel_reason == "cpu-order" if kernels else self.known
        if not known or self.threads is None:
            return reduction_depth(n, None)
        return max(reduction_depth(n, t, dtype) for t in range(1, self.threads + 1))


def intra_op_threads(configured: int) -> int:
    """The thread count TensorFlow's CPU device has: `configured`
    (``tf.config.threading.get_intra_op_parallelism_threads()``), 0 meaning the CPUs
    this process may run on."""
    if configured > 0:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def installed_tensorflow() -> str:
    """The installed TensorFlow's version, without importing it ("" if none)."""
    for name in ("tensorflow-cpu", "tensorflow"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return ""


def assumed_order(mode: str) -> Order:
    """The order the draft assumes before the tape reports its own: this machine, the
    installed TensorFlow, TensorFlow's default thread count."""
    return Order(
        mode=mode,
        threads=intra_op_threads(0),
        tensorflow_version=installed_tensorflow(),
        machine=platform.machine(),
        assumed=True,
    )
