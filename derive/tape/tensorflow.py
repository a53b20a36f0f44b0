"""Importing TensorFlow, once and quietly (it costs seconds, and its C++ code logs to
file descriptor 2 before any setting takes effect), and running a function the way the
learner's script would: eagerly, in a ``tf.function`` or under XLA."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from types import ModuleType
from typing import Any


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ code logs there at import
    time, before TF_CPP_MIN_LOG_LEVEL or absl logging settings take effect."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@cache
def tensorflow() -> ModuleType:
    """Import TensorFlow once, quietly."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def in_mode(function: Callable[..., Any], mode: str) -> Callable[..., Any]:
    """`function` as the learner's script may run it: as is (eager), in a
    ``tf.function``, or in ``tf.function(jit_compile=True)`` (XLA)."""
    if mode == "eager":
        return function
    return tensorflow().function(function, jit_compile=mode == "xla", autograph=False)
