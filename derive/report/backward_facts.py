"""The facts of the backward-pass section: each watched node with its values, adjoints
and their check, the steps of reverse mode written out, and the sums over the samples
that make the gradients of the parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common.i18n import Message
from ..exact.check import (
    Check,
)

MAX_TABLE_ROWS = 20  # as in the per-sample table: beyond this, tables show their ends only
EDGE_ROWS = 5
SHOWN_WORKED = 3  # samples worked out with numbers before the middle is elided
SHOWN_CHECKS = 3  # per-sample checks listed one by one; beyond, the worst one


# Up to this many samples every per-sample check is kept (and written to JSON); beyond,
# only those of the table rows and the worst one per node, with counts of the rest.
LISTED_LIMIT = 10_000

Values = tuple[float, ...] | np.ndarray  # a tuple on the exact path, else float64 (read-only)


@dataclass(frozen=True)
class ShownCheck:
    label: str | Message  # "1", "2", or "7 (worst of 17)" as a Message; "" for a scalar
    check: Check


@dataclass(frozen=True)
class NodeCheck:
    """The tape's adjoint at one node against the reference, sample by sample.

    Every sample is checked and counted; `checks` holds one per sample up to
    LISTED_LIMIT samples (one for a scalar), beyond that those of the table rows and
    the worst sample, at the 0-based sample indices `indices`.
    """

    checks: tuple[Check, ...]
    roundings: int  # k of the bound gamma_k * M
    shown: tuple[ShownCheck, ...]  # what the report lists
    indices: tuple[int, ...]  # the sample of each entry of `checks`
    samples: int  # how many values were checked
    failed: int  # how many of them are beyond their bound (overflows included)
    inconclusive: int = 0  # within their bound, which is at least half the value
    overflowed: int = 0  # non-finite where a correct tape may leave the dtype's range

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def complete(self) -> bool:
        """`checks` holds every sample's check."""
        return len(self.checks) == self.samples


@dataclass(frozen=True)
class NodeFacts:
    """One node: what it is, its value and adjoint on the tape, and the expected adjoint."""

    name: str
    kind: str  # "parameter", "data", "constant", "op"
    op: str  # "variable", "constant", or the op's name
    tf_op: str  # what TensorFlow records: tf.Variable, tf.constant, Mul, ...
    inputs: tuple[str, ...]
    symbol: str  # LaTeX, with the index i for per-sample nodes
    label: str  # plain text
    definition: str  # LaTeX: symbol = op(inputs)
    per_sample: bool
    values: Values  # the tape's values
    adjoints: Values | None  # the tape's adjoints; None: not watched
    expected: str | None  # LaTeX of dL/d(node) by the chain rule
    expected_verified: bool  # equals differentiating L directly (SymPy)
    check: NodeCheck | None
    flag: bool = False  # a comparison's output (LessEqual): no gradient passes through it

    @property
    def ok(self) -> bool:
        return self.check is None or (self.check.ok and self.expected_verified)


@dataclass(frozen=True)
class Propagation:
    """What one op's backward function sends to one of its inputs."""

    target: str
    watched: bool
    broadcast: bool  # a scalar used by every sample: the adjoints are summed
    rule: str  # LaTeX, general i
    lines: tuple[str | None, ...]  # LaTeX with the tape's numbers, per shown sample; None: elided
    # A node several ops read: the tape's AddN of their contributions, per shown sample
    totals: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class BackwardStep:
    """One op's backward function, in the order the tape runs them."""

    node: str
    op: str
    tf_op: str
    rule: str  # the op's local rule in words (English; the catalogue has op_rule.<op>)
    propagations: tuple[Propagation, ...]


@dataclass(frozen=True)
class BroadcastSum:
    """A scalar parameter's gradient as the sum of the adjoints that reach it."""

    parameter: str
    via: str  # the node whose adjoints are summed
    general: str  # LaTeX: dL/db = sum_i dL/dy_hat_i = sum_i 2 r_i / n
    written_out: str  # the same for this n, with each term's chain-rule factor
    with_numbers: tuple[str, ...]  # the tape's adjoints put in, and its gradient (in lines)
    terms: int
    total: float  # the tape's gradient
    derivation: str  # LaTeX of the core derivation's formula
    meets_derivation: bool  # SymPy: the sum equals that formula, term by term
    in_full: bool = True  # shown step by step (see derive.report.condensed)


@dataclass(frozen=True)
class BackwardFacts:
    n: int
    dtype: str
    nodes: tuple[NodeFacts, ...]  # leaves, then ops in forward order
    steps: tuple[BackwardStep, ...]  # the ops' backward functions, last op first
    sums: tuple[BroadcastSum, ...]
    rows: tuple[int | None, ...]  # sample indices (0-based) shown in tables; None: elided
    elided: int
    recorded_ops: tuple[str, ...]  # what TensorFlow records for the script's own expressions
    replayed_ops: tuple[str, ...]  # the ops of the node list
    ops_match: bool
    matches_definition: bool  # the nodes compose to the model's and loss's formulas
    replay_matches: bool  # same loss and gradients as tape.gradient(loss, [W, b])
    reference_method: Message
    exact: bool = True  # exact rational references; else float64 with a stated error
    # The script's tape ran under XLA: the replay (TensorFlow's own kernels, eagerly)
    # need not give its bits, as XLA fuses and reorders; section 6 checks the script's.
    replay_under_xla: bool = False
    # the deliberately wrong derivative the gradient references use (--wrong-derivative)
    wrong_kind: str | None = None

    @property
    def replay_expected(self) -> bool:
        """The replay must give the script's loss and gradients bit for bit."""
        return not self.replay_under_xla

    @property
    def ok(self) -> bool:
        return (
            all(node.ok for node in self.nodes)
            and all(s.meets_derivation for s in self.sums)
            and self.ops_match
            and self.matches_definition
            and (self.replay_matches or not self.replay_expected)
        )

    @property
    def failures(self) -> tuple[Message, ...]:
        """What disagrees, one short sentence each (empty when everything agrees);
        ``str()`` gives the English sentence."""
        found = []
        for node in self.nodes:
            if node.check is None:
                continue
            if not node.expected_verified:
                found.append(Message.of("failure.not_partial", label=node.label))
            overflowed = node.check.overflowed
            if overflowed:
                found.append(
                    Message.of(
                        "failure.overflow", label=node.label, count=overflowed, dtype=self.dtype
                    )
                )
            failed = node.check.failed - overflowed
            if failed:
                found.append(
                    Message.of(
                        "failure.beyond_bound_samples",
                        label=node.label,
                        failed=failed,
                        total=node.check.samples,
                    )
                    if node.per_sample
                    else Message.of("failure.beyond_bound", label=node.label)
                )
        differ = [f"dL/d{s.parameter}" for s in self.sums if not s.meets_derivation]
        if differ:  # once for all the gradients, naming the formula of this run
            found.append(
                Message.of("failure.sums_differ", quantities=", ".join(differ))
                if self.wrong_kind is None
                else Message.of(
                    "failure.sums_differ_wrong", quantities=", ".join(differ), kind=self.wrong_kind
                )
            )
        if not self.ops_match:
            found.append(Message.of("failure.ops_differ"))
        if not self.matches_definition:
            found.append(Message.of("failure.not_composed"))
        if not self.replay_matches and self.replay_expected:
            found.append(Message.of("failure.replay_differs"))
        return tuple(found)

    @property
    def only_overflowed(self) -> bool:
        """Not ok only because adjoints left the dtype's range where a correct tape may."""
        return (
            all(
                node.check is None
                or (node.check.failed == node.check.overflowed and node.expected_verified)
                for node in self.nodes
            )
            and all(s.meets_derivation for s in self.sums)
            and self.ops_match
            and self.matches_definition
            and (self.replay_matches or not self.replay_expected)
        )

    @property
    def inconclusive(self) -> int:
        """Adjoints within their bound where the bound is at least half the value."""
        return sum(node.check.inconclusive for node in self.checked if node.check)

    @property
    def overflowed(self) -> int:
        """Adjoints that left the dtype's range where a correct tape may."""
        return sum(node.check.overflowed for node in self.checked if node.check)

    def node(self, name: str) -> NodeFacts:
        return next(node for node in self.nodes if node.name == name)

    @property
    def checked(self) -> tuple[NodeFacts, ...]:
        """The nodes with an adjoint check, in forward order."""
        return tuple(node for node in self.nodes if node.check is not None)

    @property
    def per_sample_nodes(self) -> tuple[NodeFacts, ...]:
        return tuple(node for node in self.nodes if node.kind == "op" and node.per_sample)

    @property
    def adjoint_nodes(self) -> tuple[NodeFacts, ...]:
        """The per-sample op nodes the tape has adjoints for: not those computed from
        the data alone (x_i^2), which it does not watch."""
        return tuple(node for node in self.per_sample_nodes if node.adjoints is not None)
