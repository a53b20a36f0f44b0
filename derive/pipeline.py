"""The command line's schedule: what runs while TensorFlow loads, and in which process.

    child process                      this process
    -------------                      ------------
    import TensorFlow (seconds)        import SymPy, Jinja, WeasyPrint; derive; exact
                                       references; a draft report rendered once to
                                       render every formula (cached) and warm WeasyPrint
    train: N steps in one tf.function
    send the trace              ---->  check every step (exact, sums form)
    draw the plots (matplotlib is      ...
      loaded with TensorFlow)   ---->  HTML with the plots, PDF, JSON

The library call :func:`derive.report.build_report` does the same work in one process,
one step after the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .background import TrainingJob
from .problem import Problem
from .progress import Progress

if TYPE_CHECKING:
    from .report import Report
    from .tape import Trace

# A draft repeats the derivation's exact work, which grows with n; past this many
# samples that work alone outlasts TensorFlow's import, and a draft would only delay.
WARM_UP_MAX_SAMPLES = 50
_TINY_PAGE = '<p>warm-up <b>x</b></p><svg viewBox="0 0 2 2"><path d="M 0 0 L 1 1"/></svg>'


def warm_up(
    problem: Problem,
    wrong_derivative: str | None,
    formats: Iterable[str],
    lang: str = "en",
) -> None:
    """Render a draft of the report (one training step, no TensorFlow), so that every
    formula is rendered -- once, the renderer caches it -- and the templates are
    compiled before the tape's numbers arrive; also load WeasyPrint's fonts."""
    from .render import to_html, to_pdf
    from .report import explain, formulas_for, symbolic_for
    from .training import reference_trace

    formats = set(formats)
    if not formats & {"html", "pdf"} or problem.n > WARM_UP_MAX_SAMPLES:
        return
    steps = min(problem.training.steps, 1)
    draft = dataclasses.replace(
        problem, training=dataclasses.replace(problem.training, steps=steps)
    )
    symbolic = symbolic_for(problem)
    trace = reference_trace(draft, symbolic, formulas_for(symbolic, wrong_derivative))
    # The draft has no backward section: that needs the tape's replay.
    to_html(explain(draft, wrong_derivative, trace, backward=False), lang, plots={})
    if "pdf" in formats:
        to_pdf(_TINY_PAGE)


def run(
    job: TrainingJob,
    problem: Problem,
    wrong_derivative: str | None,
    formats: list[str],
    progress: Progress,
    *,
    lang: str = "en",
    backward: bool = True,
) -> tuple[Report, dict[str, bytes]]:
    """Check and render `problem`, with `job` training it in the background."""
    from .render import render_all
    from .report import explain, symbolic_for
    from .training import plot_spec

    job.submit(problem)
    progress.stage("deriving")
    wants_plots = problem.training.steps > 0 and bool({"html", "pdf"} & set(formats))

    def tape() -> Trace:
        # Called by explain once everything that needs no tape is done.
        spec = plot_spec(problem, symbolic_for(problem)) if wants_plots else None
        if spec is not None:
            spec = dataclasses.replace(spec, lang=lang)
        job.request_plots(spec)  # sent in the background, read after the training
        warm_up(problem, wrong_derivative, formats, lang)
        progress.stage("training")
        return job.result()

    report = explain(problem, wrong_derivative, tape, progress.steps, backward=backward)
    contents = render_all(
        report, formats, progress.stage, lang=lang, plots=job.plots if wants_plots else None
    )
    return report, contents
