"""The command line: parsing, the report and handouts commands, the training process
that runs beside the draft, the progress bar, the terminal lines, and errors and signals
turned into one line and an exit code.

May import: handouts, render, report, exact, symbolic, tape, problem, models, common.
"""
