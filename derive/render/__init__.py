"""From facts to files: the Jinja environment and its filters, LaTeX as inline SVG or
HTML text, the plots and the graph drawing, the message catalogues' words, the HTML page,
the PDF (WeasyPrint, fetching only our own assets), the JSON document, the Jupyter view,
and atomic writes. Reads the facts; nothing below imports it.

May import: report, exact, symbolic, problem, models, common.
"""
