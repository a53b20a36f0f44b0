"""The facts of the first sections: the problem and its data, the derivation of each
gradient step by step, and the per-sample table with its means."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from fractions import Fraction

import sympy as sp

from ..common.i18n import Message
from ..common.numbers import as_float
from ..exact.reference import Samples, sample_values
from ..models.registry import DEFAULT_HUBER_DELTA, DEFAULT_LOSS
from ..problem.problem import BUILTIN_DATASETS, Dataset, Problem, Training
from ..symbolic.derivation import (
    Formula,
    I,
    N,
    Symbolic,
    latex,
    verify_equal,
    verify_terms_equal,
)
from .condensed import worked_in_full
from .facts import (
    DataRow,
    GradientDerivation,
    MatrixForm,
    ProblemFacts,
    SampleRow,
    SampleTable,
    StepFacts,
    shown_rows,
)

WRITTEN_OUT_CHECK_LIMIT = 200  # samples up to which the written-out formulas are verified


def _source_message(dataset: Dataset) -> Message:
    """Where the samples came from: a built-in set or inline values by name, else as given."""
    if BUILTIN_DATASETS.get(dataset.name) == dataset:
        return Message.of(f"dataset.{dataset.name}")
    if dataset.origin is not None:
        return dataset.origin
    if dataset.name == "inline":
        return Message.of("dataset.inline")
    return Message.of("dataset.other", source=dataset.source)


def gradient_lhs(parameter: str) -> str:
    return rf"\frac{{\partial L}}{{\partial {parameter}}}"


def derivation_facts(symbolic: Symbolic, n: int) -> tuple[GradientDerivation, ...]:
    # The formula for this n must be the derivative of the loss for this n. Checking
    # very long written-out sums costs time (SymPy) and adds no insight.
    written_loss = symbolic.loss.written_out(n) if n <= WRITTEN_OUT_CHECK_LIMIT else None

    def short(expression: sp.Expr) -> str:
        return shown_latex(symbolic, expression)

    facts = []
    by_terms = symbolic.loss.summand.has(sp.Piecewise)
    full = worked_in_full(tuple(symbolic.parameters))
    for name, derivation in symbolic.derivations.items():
        if written_loss is None:
            concrete_ok = True
        elif by_terms:
            concrete_ok = verify_terms_equal(derivation.result, symbolic.loss, n, derivation.symbol)
        else:
            concrete_ok = verify_equal(
                derivation.result.written_out(n), written_loss.diff(derivation.symbol)
            )
        facts.append(
            GradientDerivation(
                parameter=name,
                lhs=gradient_lhs(name),
                steps=tuple(
                    StepFacts(
                        s.rule, s.rule_key, s.explanation, short(s.expression), s.note, s.verified
                    )
                    for s in derivation.steps
                ),
                result=short(derivation.result.expression),
                written_out=derivation.result.written_out_latex(n),
                written_out_verified=concrete_ok,
                verified=derivation.verified and concrete_ok,
                in_full=name in full,
            )
        )
    return tuple(facts)


def sample_table(
    symbolic: Symbolic,
    formulas: Mapping[str, Formula],
    parameters: Mapping[str, Fraction],
    samples: Samples,
    means: Mapping[str, Fraction],
) -> SampleTable:
    """The per-sample table; `means` holds the loss ("L") and each gradient, already known."""
    n = samples.n
    indices = shown_rows(n)
    elided = n - sum(k is not None for k in indices)
    shown = [k for k in indices if k is not None]

    def at_shown(expr: sp.Expr) -> dict[int, Fraction]:
        return dict(
            zip(shown, sample_values(symbolic, expr, parameters, samples, shown), strict=True)
        )

    predictions = at_shown(symbolic.prediction)
    residuals = at_shown(symbolic.residual)
    loss_terms = at_shown(symbolic.loss.summand)
    shares: dict[str, dict[int, Fraction]] = {}
    headers: dict[str, str] = {}
    r_i = sp.Symbol("r_{i}")
    for name, formula in formulas.items():
        # A sample's share is n * coefficient * summand: the mean of the shares is the gradient.
        scale = Fraction(str(formula.coefficient.subs(N, n) * n))
        shares[name] = {k: scale * v for k, v in at_shown(formula.summand).items()}
        header = formula.coefficient * N * formula.summand.xreplace({symbolic.residual: r_i})
        headers[name] = latex(header)
    rows = tuple(
        None
        if k is None
        else SampleRow(
            i=k + 1,
            x=tuple(float(c[k]) for c in samples.columns),
            y=float(samples.y[k]),
            prediction=as_float(predictions[k]),
            residual=as_float(residuals[k]),
            loss_term=as_float(loss_terms[k]),
            shares={name: as_float(values[k]) for name, values in shares.items()},
        )
        for k in indices
    )
    return SampleTable(
        loss_term_header=latex(symbolic.loss.summand.xreplace({symbolic.residual: r_i})),
        share_headers=headers,
        rows=rows,
        elided=elided,
        mean_loss_term=as_float(means["L"]),
        mean_shares={name: as_float(means[name]) for name in formulas},
    )


def reproduce_command(problem: Problem) -> str:
    """The command line that makes this problem again (options at their default left out)."""
    dataset = problem.dataset
    fields = dict(dataset.origin.fields) if dataset.origin is not None else {}
    if BUILTIN_DATASETS.get(dataset.name) == dataset:
        parts = ["--data", dataset.name]
    elif dataset.origin is not None and dataset.origin.key == "dataset.csv":
        parts = ["--data", str(fields["file"])]
        if (fields.get("x"), fields.get("y")) != ("x", "y"):
            # the feature columns are named "a, b" in the sentence: --columns a,b,y
            features = str(fields["x"]).replace(", ", ",")
            parts += ["--columns", f"{features},{fields['y']}"]
    else:
        parts = [p for c in dataset.columns for p in ("--x", ",".join(map(repr, c)))]
        parts += ["--y", ",".join(map(repr, dataset.y))]
    initial = problem.initial
    if initial.seed is not None:
        parts += ["--seed", str(initial.seed)]
    else:
        parts += ["--init", ",".join(f"{k}={v!r}" for k, v in initial.values.items())]
    defaults = Training()
    for flag, value, default in [
        ("--dtype", problem.dtype, "float32"),
        ("--mode", problem.mode, "eager"),
        ("--loss", problem.loss, DEFAULT_LOSS),
        ("--huber-delta", problem.huber_delta, float(DEFAULT_HUBER_DELTA)),
        ("--steps", problem.training.steps, defaults.steps),
        ("--lr", problem.training.learning_rate, defaults.learning_rate),
        ("--display-step", problem.training.display_step, defaults.display_step),
    ]:
        if value is not None and value != default:
            parts += [flag, str(value)]
    if problem.standardized is not None:
        parts.append("--standardize")
    return "python -m derive report " + " ".join(shlex.quote(part) for part in _joined(parts))


def _joined(parts: list[str]) -> list[str]:
    """A value that starts with '-' joined to its flag (--x=-1,2): argparse would read it
    as an option of its own."""
    joined: list[str] = []
    for part in parts:
        negative = part.startswith("-") and not part.startswith("--")
        if negative and joined and joined[-1].startswith("--") and "=" not in joined[-1]:
            joined[-1] += "=" + part
        else:
            joined.append(part)
    return joined


SHORTHAND_FEATURES = 3  # from this many features on, derivations write the residual r_i


def shown_latex(symbolic: Symbolic, expression: sp.Expr) -> str:
    """An expression as the report prints it: with three features or more the residual
    is written r_i (defined where it is first used), or the lines would not fit the page."""
    if not residual_shorthand(symbolic):
        return latex(expression)
    return latex(expression.xreplace({symbolic.residual: sp.Symbol("r_{i}")}))


def residual_shorthand(symbolic: Symbolic) -> str:
    """LaTeX defining r_i where the derivation writes it so; empty for fewer features."""
    if symbolic.model.features < SHORTHAND_FEATURES:
        return ""
    written = prediction_latex(symbolic)
    if written == latex(symbolic.prediction):
        return r"r_{i} = \hat{y}_{i} - y_{i} = " + latex(symbolic.residual)
    rest = latex(symbolic.residual - symbolic.prediction)  # - y_i
    return r"r_{i} = \hat{y}_{i} - y_{i} = " + written + " " + rest


ELIDED_FEATURES = 6  # from this many features on, the prediction is written with a \cdots


def prediction_latex(symbolic: Symbolic) -> str:
    """y_hat_i as section 1 writes it. From six features on, an affine model reads
    W_1 x_i1 + W_2 x_i2 + ... + W_k x_ik + b (SymPy checks that it is that form): the
    whole sum would run past the page."""
    features = list(symbolic.features)
    symbols = list(symbolic.parameters.values())
    if len(features) < ELIDED_FEATURES or len(symbols) != len(features) + 1:
        return latex(symbolic.prediction)
    weights, bias = symbols[:-1], symbols[-1]
    affine = sum((w * f for w, f in zip(weights, features, strict=True)), bias)
    if sp.expand(symbolic.prediction - affine) != 0:
        return latex(symbolic.prediction)
    first, second, last = (latex(weights[j] * features[j]) for j in (0, 1, -1))
    return rf"{first} + {second} + \cdots + {last} + {latex(bias)}"


def _feature_labels(k: int) -> tuple[str, ...]:
    return ("x",) if k == 1 else tuple(f"x_{{{j}}}" for j in range(1, k + 1))


def matrix_form(symbolic: Symbolic) -> MatrixForm | None:
    """nabla_W L = c X^T v for several features, where c v_i is b's per-sample term (the
    outer derivative at r_i): entry j of X^T v is sum_i x_ij v_i, and SymPy proves each
    entry equal to the index form dL/dW_j derived in section 2."""
    features = symbolic.features
    if len(features) < 2 or "b" not in symbolic.derivations:
        return None
    bias = symbolic.derivations["b"].result
    weights = list(symbolic.parameters)[: len(features)]
    entries = [
        verify_equal(
            bias.coefficient * sp.Sum(bias.summand * feature, (I, 1, N)),
            symbolic.derivations[name].result.expression,
        )
        for name, feature in zip(weights, features, strict=True)
    ]
    column = r" \\ ".join(rf"\frac{{\partial L}}{{\partial {name}}}" for name in weights)
    v_i = latex(bias.summand.xreplace({symbolic.residual: sp.Symbol("r_{i}")}))
    return MatrixForm(
        gradient=(
            rf"\nabla_{{W}} L = \begin{{bmatrix}} {column} \end{{bmatrix}} = "
            + latex(bias.coefficient)
            + r" \, X^{\mathsf{T}} v"
        ),
        vector=(
            r"v = \left(v_{1}, \ldots, v_{n}\right)^{\mathsf{T}}, \quad " + rf"v_{{i}} = {v_i}"
        ),
        verified=all(entries),
    )


def problem_facts(problem: Problem, symbolic: Symbolic) -> ProblemFacts:
    model = problem.model_entry
    return ProblemFacts(
        name=problem.name,
        source=problem.dataset.source,
        n=problem.n,
        dtype=problem.dtype,
        x_given=problem.dataset.table,
        y_given=problem.dataset.y,
        x=problem.table,
        y=problem.y,
        features=_feature_labels(problem.k),
        init=dict(problem.initial.values),
        init_source=problem.initial.source,
        seed=problem.initial.seed,
        model=model.title,
        loss=problem.loss_entry.title,
        prediction=prediction_latex(symbolic),
        loss_general=shown_latex(symbolic, symbolic.loss.expression),
        residual=residual_shorthand(symbolic),
        matrix_form=matrix_form(symbolic),
        loss_written_out=symbolic.loss.written_out_latex(problem.n),
        model_name=model.name,
        loss_name=problem.loss,
        parameters=tuple(model.parameters),
        loss_sentence=problem.loss_entry.sentence,
        derivation_note=problem.loss_entry.derivation_note,
        bound_text=problem.loss_entry.bound_text,
        loss_words=dict(problem.loss_entry.words),
        huber_delta=problem.huber_delta,
        source_message=_source_message(problem.dataset),
        standardized=problem.standardized,
        mode=problem.mode,
        reproduce=reproduce_command(problem),
        data_rows=tuple(
            None
            if k is None
            else DataRow(
                k + 1,
                tuple(c[k] for c in problem.dataset.columns),
                tuple(c[k] for c in problem.columns),
                problem.dataset.y[k],
                problem.y[k],
            )
            for k in shown_rows(problem.n)
        ),
    )
