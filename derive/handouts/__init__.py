"""Exercise sheets and answer keys for a class: each student's numbers drawn from the
class seed, the values worked exactly and checked against the tape, and the PDFs of the
set rendered in two processes.

May import: render, report, exact, symbolic, tape, problem, models, common.
"""
