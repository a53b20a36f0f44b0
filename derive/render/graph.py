"""The tape's graph as inline SVG: a box per node with its value and its adjoint.

A hand-made layout for small graphs of the shape the models here have: the ops in a
row, in the order the script runs them; each parameter above and each data vector
below the op that first uses it. Text is monospaced, so every width is known without
measuring fonts and nothing overlaps; the SVG is plain markup (no script, no external
files, no random ids), identical from run to run.

Up to MAX_LISTED samples each box lists every value; beyond that it shows the
smallest, the largest and the sum over the samples (for many samples, held as arrays,
with NumPy and a correctly rounded sum).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..common.i18n import Translator, translator
from ..common.numbers import plain
from ..exact.expansion import Expansion, total

if TYPE_CHECKING:
    from ..report.backward_facts import BackwardFacts, NodeFacts

MAX_LISTED = 3
DIGITS = 5

FONT = 11.0  # px, the numbers
SMALL = 9.0  # px, headers and column titles
TITLE = 13.0  # px, the node's name
ADVANCE = 0.6021  # DejaVu Sans Mono: every glyph is 1233/2048 em wide
PAD = 6.0
ROW = 14.0
HEADER = 16.0
TITLE_ROW = 19.0
COLUMNS_ROW = 13.0
GAP_X = 24.0
GAP_Y = 30.0
MARGIN = 4.0
LEGEND = 22.0
# Ops per band: a longer graph (Huber's thirteen) wraps onto further bands, each with its
# own leaves above and below, so that its boxes keep the size of a short one's
OPS_PER_BAND = 5

INK = "#1b1f24"
MUTED = "#5b6470"
ADJOINT = "#1f5fa8"
SANS = "DejaVu Sans, Noto Sans CJK KR"  # Hangul from the CJK font (the PDF embeds it)
FILL = {"parameter": "#eaf2fb", "data": "#f1f2f4", "constant": "#f1f2f4", "op": "#ffffff"}
BAND = {"parameter": "#cfe0f3", "data": "#dfe2e6", "constant": "#dfe2e6", "op": "#e6e9ed"}


def _number(value: float) -> str:
    return plain(value, DIGITS).replace("-", "\u2212")


def _width(text: str, size: float = FONT) -> float:
    return len(text) * ADVANCE * size


@dataclass(frozen=True)
class _Row:
    index: str
    value: str
    adjoint: str


@dataclass(frozen=True)
class _Box:
    node: NodeFacts
    rows: tuple[_Row, ...]
    header: str
    tag: str

    @property
    def height(self) -> float:
        return HEADER + TITLE_ROW + COLUMNS_ROW + ROW * len(self.rows) + PAD / 2


def _rows(node: NodeFacts) -> tuple[_Row, ...]:
    values = node.values
    adjoints = node.adjoints

    def adjoint_at(k: int) -> str:
        return "\u2014" if adjoints is None else _number(adjoints[k])

    if len(values) == 1:
        return (_Row("", _number(values[0]), adjoint_at(0)),)
    if len(values) <= MAX_LISTED:
        return tuple(
            _Row(str(k + 1), _number(values[k]), adjoint_at(k)) for k in range(len(values))
        )

    value_summary, adjoint_summary = _summary(values), _summary(adjoints)
    return tuple(
        _Row(pick, value_summary[pick], adjoint_summary[pick]) for pick in ("min", "max", "\u03a3")
    )


def _summary(items: Sequence[float] | np.ndarray | None) -> dict[str, str]:
    """Smallest, largest and sum; for an array (many samples), the correctly rounded sum."""
    if items is None:
        return dict.fromkeys(("min", "max", "\u03a3"), "\u2014")
    if isinstance(items, np.ndarray):
        finite = bool(np.isfinite(items).all())  # else the sum is NaN or infinite anyway
        summed = total(Expansion.of(items), items.size) if finite else float(np.sum(items))
        chosen = (float(np.min(items)), float(np.max(items)), summed)
    else:
        chosen = (min(items), max(items), sum(items))
    return dict(zip(("min", "max", "\u03a3"), map(_number, chosen), strict=True))


def _box(node: NodeFacts, t: Translator) -> _Box:
    header = t.text(f"op.{node.op}") + (
        " \u00b7 " + t.text("graph.not_watched")
        if node.kind != "op" and node.adjoints is None
        else ""
    )
    return _Box(node, _rows(node), header, node.tf_op if node.kind == "op" else "")


def _box_width(box: _Box, t: Translator) -> float:
    index = max(len(r.index) for r in box.rows)
    value = max([len(r.value) for r in box.rows] + [len(t.text("graph.value"))])
    adjoint = max([len(r.adjoint) for r in box.rows] + [len(t.text("graph.adjoint"))])
    body = (index + value + adjoint + (3 if index else 2)) * ADVANCE * FONT
    header = _width(box.header + "  " + box.tag, SMALL)
    return max(body, header) + 2 * PAD


@dataclass(frozen=True)
class _Placed:
    box: _Box
    x: float
    y: float
    width: float
    height: float
    band: int = 0
    column: int = 0
    row: str = "middle"

    @property
    def top(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y

    @property
    def bottom(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height

    @property
    def left(self) -> tuple[float, float]:
        return self.x, self.y + self.height / 2

    @property
    def right(self) -> tuple[float, float]:
        return self.x + self.width, self.y + self.height / 2


def layout(
    facts: BackwardFacts, t: Translator | None = None
) -> tuple[dict[str, _Placed], float, float]:
    """Positions of every box, and the drawing's width and height."""
    t = t or translator()
    boxes = {node.name: _box(node, t) for node in facts.nodes}
    width = max(_box_width(box, t) for box in boxes.values())
    ops = [node.name for node in facts.nodes if node.kind == "op"]
    band = {name: k // OPS_PER_BAND for k, name in enumerate(ops)}
    column = {name: k % OPS_PER_BAND for k, name in enumerate(ops)}
    # Leaves go above (parameters) or below (data) the first op that uses them; a
    # taken place moves them one column to the right.
    taken: set[tuple[int, int, str]] = set()
    rows: dict[str, str] = {name: "middle" for name in ops}
    for node in facts.nodes:
        if node.kind == "op":
            continue
        row = "top" if node.kind == "parameter" else "bottom"
        users = [op.name for op in facts.nodes if node.name in op.inputs]
        first_user = min(users, key=ops.index) if users else ops[0]
        where, first = band[first_user], column[first_user]
        while (where, first, row) in taken:
            first += 1
        taken.add((where, first, row))
        band[node.name], column[node.name], rows[node.name] = where, first, row
    bands = max(band.values()) + 1
    heights = {
        (b, row): max(
            (boxes[n].height for n in boxes if rows[n] == row and band[n] == b), default=0.0
        )
        for b in range(bands)
        for row in ("top", "middle", "bottom")
    }
    tops: dict[tuple[int, str], float] = {}
    y = MARGIN
    for b in range(bands):
        tops[(b, "top")] = y
        y += heights[(b, "top")] + (GAP_Y if heights[(b, "top")] else 0)
        tops[(b, "middle")] = y
        y += heights[(b, "middle")] + GAP_Y
        tops[(b, "bottom")] = y
        y += heights[(b, "bottom")] + (GAP_Y if b < bands - 1 else 0)
    placed = {}
    for name, box in boxes.items():
        key = (band[name], rows[name])
        height = heights[key] if rows[name] == "middle" else box.height
        y = tops[key]
        if rows[name] == "top":
            y = tops[key] + heights[key] - box.height
        x = MARGIN + column[name] * (width + GAP_X)
        placed[name] = _Placed(box, x, y, width, height, band[name], column[name], rows[name])
    columns = max(column.values()) + 1
    total_width = 2 * MARGIN + columns * width + (columns - 1) * GAP_X
    total_height = tops[(bands - 1, "bottom")] + heights[(bands - 1, "bottom")] + LEGEND
    return placed, total_width, total_height


def _text(
    x: float,
    y: float,
    text: str,
    size: float = FONT,
    anchor: str = "start",
    fill: str = INK,
    weight: str = "normal",
    family: str = "DejaVu Sans Mono",
) -> str:
    weight_attribute = f' font-weight="{weight}"' if weight != "normal" else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-family="{family}, monospace" '
        f'font-size="{size:g}" text-anchor="{anchor}" fill="{fill}"{weight_attribute}>'
        f"{html.escape(text)}</text>"
    )


def _draw_box(p: _Placed, t: Translator) -> list[str]:
    node = p.box.node
    x, y, w = p.x, p.y, p.width
    stroke = 1.6 if node.kind == "parameter" else 0.9
    parts = [
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{p.height:.1f}" rx="4" '
        f'fill="{FILL[node.kind]}" stroke="{INK}" stroke-width="{stroke}"/>',
        f'<path d="M{x:.1f},{y + HEADER:.1f} h{w:.1f} V{y + 4:.1f} a4,4 0 0 0 -4,-4 '
        f'H{x + 4:.1f} a4,4 0 0 0 -4,4 z" fill="{BAND[node.kind]}" stroke="none"/>',
        f'<line x1="{x:.1f}" y1="{y + HEADER:.1f}" x2="{x + w:.1f}" y2="{y + HEADER:.1f}" '
        f'stroke="{INK}" stroke-width="0.5"/>',
        _text(x + PAD, y + 11.5, p.box.header, SMALL, fill=MUTED, family=SANS),
    ]
    if p.box.tag:
        parts.append(
            _text(x + w - PAD, y + 11.5, p.box.tag, SMALL, "end", MUTED, family="DejaVu Sans")
        )
    parts.append(
        _text(
            x + w / 2,
            y + HEADER + 14.5,
            node.label,
            TITLE,
            "middle",
            weight="bold",
            family="DejaVu Sans",
        )
    )
    top = y + HEADER + TITLE_ROW + 9
    value_right = (
        x
        + w
        - PAD
        - _width(max([r.adjoint for r in p.box.rows] + [t.text("graph.adjoint")], key=len))
        - ADVANCE * FONT * 1.5
    )
    adjoint_right = x + w - PAD
    value, adjoint = t.text("graph.value"), t.text("graph.adjoint")
    parts.append(_text(value_right, top, value, SMALL, "end", MUTED, family=SANS))
    parts.append(_text(adjoint_right, top, adjoint, SMALL, "end", ADJOINT, family=SANS))
    for k, row in enumerate(p.box.rows):
        baseline = top + ROW * (k + 1)
        if row.index:
            parts.append(_text(x + PAD, baseline, row.index, SMALL + 0.5, fill=MUTED))
        parts.append(_text(value_right, baseline, row.value, anchor="end"))
        parts.append(_text(adjoint_right, baseline, row.adjoint, anchor="end", fill=ADJOINT))
    return parts


def _arrow(start: tuple[float, float], end: tuple[float, float]) -> str:
    (x1, y1), (x2, y2) = start, end
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{INK}" '
        f'stroke-width="1.1" marker-end="url(#derive-graph-arrow)"/>'
    )


def _edge(source: _Placed, target: _Placed, lane: int = 0) -> str:
    """An arrow from source to target; `lane` separates the detours that share a gap."""
    skips = target.column - source.column > 1
    if source.band == target.band and source.row == target.row == "middle" and skips:
        # Past the boxes between them: along the gap under the row, in its own lane
        (x1, y1), (x2, y2) = source.bottom, target.bottom
        below = y1 + 7 + 6 * (lane % 3)
        return (
            f'<path d="M{x1 + source.width / 4:.1f},{y1:.1f} V{below:.1f} '
            f'H{x2 - target.width / 4:.1f} V{y2:.1f}" fill="none" stroke="{INK}" '
            'stroke-width="1.1" marker-end="url(#derive-graph-arrow)"/>'
        )
    if source.band != target.band:
        # Down the gap right of the source, along the gap above the target's band, down
        # into the target: no box is crossed
        (x1, y1), (x2, y2) = source.right, target.top
        aside, above = x1 + GAP_X / 2, y2 - GAP_Y / 2
        return (
            f'<path d="M{x1:.1f},{y1:.1f} H{aside:.1f} V{above:.1f} H{x2:.1f} V{y2:.1f}" '
            f'fill="none" stroke="{INK}" stroke-width="1.1" '
            'marker-end="url(#derive-graph-arrow)"/>'
        )
    if source.y + source.height <= target.y:  # from above
        return _arrow(source.bottom, target.top)
    if source.y >= target.y + target.height:  # from below
        return _arrow(source.top, target.bottom)
    return _arrow(source.right, target.left)


def draw(facts: BackwardFacts, t: Translator | None = None) -> str:
    """The graph as one <svg> element, sized to the text width of its container."""
    t = t or translator()
    placed, width, height = layout(facts, t)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {width:.1f} '
        f'{height:.1f}" width="{width:.1f}" height="{height:.1f}" role="img" '
        f'aria-label="{html.escape(_spoken(facts, t))}">',
        f"<title>{html.escape(_spoken(facts, t))}</title>",
        '<defs><marker id="derive-graph-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{INK}"/></marker></defs>',
    ]
    lanes = 0
    for node in facts.nodes:
        for name in node.inputs:
            source, target = placed[name], placed[node.name]
            parts.append(_edge(source, target, lanes))
            if source.band == target.band and target.column - source.column > 1:
                lanes += 1
    for node in facts.nodes:
        parts.extend(_draw_box(placed[node.name], t))
    legend_y = height - 7
    note = (
        t.text("graph.each_sample", n=facts.n)
        if facts.n <= MAX_LISTED and facts.n > 1
        else t.text("graph.summary")
        if facts.n > MAX_LISTED
        else ""
    )
    size, family = SMALL + 0.5, SANS
    adjoint = t.text("graph.adjoint_legend")
    parts.append(_text(MARGIN, legend_y, t.text("graph.value_legend"), size, family=family))
    parts.append(_text(MARGIN + 122, legend_y, adjoint, size, fill=ADJOINT, family=family))
    if note:
        parts.append(_text(width - MARGIN, legend_y, note, size, "end", MUTED, family=family))
    parts.append("</svg>")
    return "\n".join(parts)


def _spoken(facts: BackwardFacts, t: Translator) -> str:
    steps = ", ".join(
        f"{node.label} = {node.op}({', '.join(node.inputs)})"
        for node in facts.nodes
        if node.kind == "op"
    )
    return t.text("graph.spoken", steps=steps)
