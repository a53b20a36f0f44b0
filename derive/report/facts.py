"""The facts of the report's first sections: the problem and its data rows, each
gradient's derivation step by step, and the per-sample table with its means."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..common.i18n import Message
from ..problem.standardize import Standardization

MAX_TABLE_ROWS = 20  # beyond this, the per-sample table shows its ends only
EDGE_ROWS = 5


@dataclass(frozen=True)
class StepFacts:
    rule: str  # the rule's name in English (as in the JSON)
    rule_key: str  # its catalogue key
    explanation: Message
    latex: str
    note: str
    verified: bool


@dataclass(frozen=True)
class GradientDerivation:
    parameter: str
    lhs: str  # \frac{\partial L}{\partial W}
    steps: tuple[StepFacts, ...]
    result: str  # the general-n formula
    written_out: str  # the same for this n
    written_out_verified: bool  # d/dW of the written-out loss equals the written-out formula
    verified: bool
    in_full: bool = True  # shown step by step (see derive.report.condensed)


@dataclass(frozen=True)
class MatrixForm:
    """Several features: the W_j gradients as one matrix product, checked element by
    element against the index form (SymPy's matrix-expression derivatives are not used)."""

    gradient: str  # LaTeX: nabla_W L = c X^T v
    vector: str  # LaTeX: v defined by its entries
    verified: bool  # every entry j equals dL/dW_j of section 2


@dataclass(frozen=True)
class DataRow:
    i: int
    x_given: tuple[float, ...]  # each feature's value
    x: tuple[float, ...]  # the same as the tape used them
    y_given: float
    y: float


@dataclass(frozen=True)
class ProblemFacts:
    name: str
    source: str
    n: int
    dtype: str
    # One feature: its values; several: each sample's row of them (X, n by k)
    x_given: tuple[float, ...] | tuple[tuple[float, ...], ...]
    y_given: tuple[float, ...]
    x: tuple[float, ...] | tuple[tuple[float, ...], ...]
    y: tuple[float, ...]
    init: Mapping[str, float]
    init_source: str
    seed: int | None
    model: str
    loss: str
    prediction: str  # LaTeX of y_hat_i
    loss_general: str  # LaTeX of L for general n
    loss_written_out: str  # LaTeX of L for this n
    data_rows: tuple[DataRow | None, ...]  # None marks elided rows
    model_name: str  # the model's registered name (catalogue key model.<name>)
    loss_name: str  # the loss's registered name (catalogue key loss.<name>)
    parameters: tuple[str, ...]  # the model's parameters, in order
    loss_sentence: str  # catalogue key introducing the loss
    derivation_note: str | None  # catalogue key: what the loss's kinks mean
    bound_text: str  # catalogue key: how k is counted for the loss
    loss_words: Mapping[str, str]  # the loss's own values by name, as text (Huber's delta)
    huber_delta: float | None  # Huber's threshold as the tape holds it; None for other losses
    source_message: Message | None = None  # where the samples came from, to be put in words
    standardized: Standardization | None = None  # the tape saw z-scores of the given data
    mode: str = "eager"  # how the tape ran: eager, function (tf.function) or xla
    reproduce: str = ""  # the command line that makes this problem again
    features: tuple[str, ...] = ("x",)  # LaTeX of each feature's column: x, or x_{1} ... x_{k}
    residual: str = ""  # LaTeX: r_i defined, where the derivation writes r_i (many features)
    matrix_form: MatrixForm | None = None  # several features: the gradient as X^T v


def shown_rows(n: int) -> list[int | None]:
    """0-based indices of the table rows shown: all up to MAX_TABLE_ROWS, else the ends."""
    if n <= MAX_TABLE_ROWS:
        return list(range(n))
    return [*range(EDGE_ROWS), None, *range(n - EDGE_ROWS, n)]


@dataclass(frozen=True)
class SampleRow:
    i: int
    x: tuple[float, ...]  # the sample's features
    y: float
    prediction: float
    residual: float
    loss_term: float
    shares: Mapping[str, float]  # each parameter's per-sample term; their mean is the gradient


@dataclass(frozen=True)
class SampleTable:
    loss_term_header: str  # LaTeX of the loss's per-sample term: r_i^2, |r_i|, h_delta(r_i)
    share_headers: Mapping[str, str]  # LaTeX, e.g. 2 r_i x_i
    rows: tuple[SampleRow | None, ...]  # None marks elided rows
    elided: int
    mean_loss_term: float
    mean_shares: Mapping[str, float]
