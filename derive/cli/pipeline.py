"""The command line's schedule: what runs while TensorFlow loads, and in which process.

    child process                      this process
    -------------                      ------------
    import TensorFlow (seconds)        import SymPy, Jinja, WeasyPrint; derive, exact
                                       references (prepare); a draft of the report with
                                       the references standing in for the tape, rendered
                                       once to render (and cache) every formula the tape
                                       does not change, and to warm WeasyPrint
    train: N steps in one tf.function
    replay the ops node by node
    send the trace              ---->  check every step (exact, sums form)
    draw the plots (matplotlib is      ...
      loaded with TensorFlow)   ---->  HTML with the plots, PDF
    large data: the sample arrays
      as JSON                   ---->  JSON

The library call :func:`derive.report.build.build_report` does the same work in one process,
one step after the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..problem.problem import Problem
from .background import TrainingJob
from .progress import Progress

if TYPE_CHECKING:
    from ..report.build import Groundwork
    from ..report.document import Report

_TINY_PAGE = '<p>warm-up <b>x</b></p><svg viewBox="0 0 2 2"><path d="M 0 0 L 1 1"/></svg>'


def warm_up(ground: Groundwork, formats: Iterable[str], lang: str = "en") -> None:
    """Render a draft of the report (exact references standing in for the tape), so
    that every formula that does not depend on the tape is rendered -- once, the
    renderer caches it -- and the templates are compiled before the tape's numbers
    arrive; also load WeasyPrint's fonts."""
    from ..render.outputs import to_html
    from ..render.pdf import to_pdf
    from ..report.build import draft

    formats = set(formats)
    if not formats & {"html", "pdf"}:
        return
    to_html(draft(ground), lang, plots={})
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
    from ..render.jsonfile import PRETTY_LIMIT
    from ..render.outputs import render_all
    from ..report.build import complete, prepare, symbolic_for
    from ..report.landscape import plot_spec

    job.submit(problem)
    progress.stage("deriving")
    wants_plots = problem.training.steps > 0 and bool({"html", "pdf"} & set(formats))
    ground = prepare(problem, wrong_derivative)
    spec = plot_spec(problem, symbolic_for(problem)) if wants_plots else None
    job.request_plots(None if spec is None else dataclasses.replace(spec, lang=lang))
    large_json = "json" in formats and problem.n > PRETTY_LIMIT
    job.request_samples_json(large_json)
    warm_up(ground, formats, lang)
    progress.stage("training")
    trace = job.result()
    report = complete(ground, trace.at(0), trace, progress.steps, backward=backward)
    contents = render_all(
        report,
        formats,
        progress.stage,
        lang=lang,
        plots=job.plots if wants_plots else None,
        samples_json=job.samples_json if large_json else None,
    )
    return report, contents
