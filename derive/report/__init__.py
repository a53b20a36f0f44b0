"""The facts of a report, section by section, as frozen dataclasses: the problem, the
derivation, the numbers substituted, the checks, the backward pass, the training; built
from a Problem by build_report, and turned into a plain dict for the JSON. No HTML: a
Report shows itself in Jupyter through the renderer derive/__init__.py hands it.

May import: exact, symbolic, tape, problem, models, common.
"""
