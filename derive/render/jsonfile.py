"""The JSON file: the report's dict written out, indented up to PRETTY_LIMIT samples,
and the sample arrays, when the training process has encoded them already, spliced in
as they are."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..report.todict import SAMPLE_ARRAYS

if TYPE_CHECKING:
    from ..problem.problem import Problem
    from ..report.document import Report
    from ..report.facts import ProblemFacts

PRETTY_LIMIT = 1000  # samples; larger documents are written compactly


@dataclass(frozen=True)
class EncodedSamples:
    """The problem's sample arrays already written as JSON. For a million samples that
    takes about a second, which the command line leaves to the training process once
    it has nothing else to do (:mod:`derive.cli.background`)."""

    arrays: Mapping[str, str]  # field name -> JSON array text

    @staticmethod
    def of(problem: ProblemFacts) -> EncodedSamples:
        return EncodedSamples.encode({key: getattr(problem, key) for key in SAMPLE_ARRAYS})

    @staticmethod
    def of_problem(problem: Problem) -> EncodedSamples:
        """The same from the Problem (which the training process holds)."""
        given = {"x_given": problem.dataset.table, "y_given": problem.dataset.y}
        return EncodedSamples.encode({"x": problem.table, "y": problem.y, **given})

    @staticmethod
    def encode(arrays: Mapping[str, Sequence[float]]) -> EncodedSamples:
        return EncodedSamples({key: json.dumps(list(arrays[key])) for key in SAMPLE_ARRAYS})


def to_json(report: Report, samples: EncodedSamples | None = None) -> str:
    """Indented for reading; compact for large data, where indenting would take seconds
    (Python's fast C encoder only writes compact JSON). `samples` (large data only)
    holds the sample arrays encoded beforehand."""
    # Here, not at the top: the training process imports this module for EncodedSamples
    # alone, and the Report's module would bring SymPy along.
    from ..report.document import report_to_dict

    if report.problem.n <= PRETTY_LIMIT:
        return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"
    samples = samples or EncodedSamples.of(report.problem)
    # Each array goes in where a placeholder string was encoded; the random token
    # cannot occur in any other string of the document.
    token = secrets.token_hex(16)
    placeholders = {key: f"{token}:{key}" for key in SAMPLE_ARRAYS}
    text = json.dumps(report_to_dict(report, placeholders), allow_nan=False)
    for key in SAMPLE_ARRAYS:
        text = text.replace(f'"{token}:{key}"', samples.arrays[key], 1)
    return text + "\n"
