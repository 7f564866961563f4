"""The proposed schema as the text table ``loopline init`` shows for confirmation.

One row per column (role, kind, counts, examples, reason), then a line each about the
label, the event time, the segment column, personal data and sampling.
"""

from __future__ import annotations

from collections.abc import Sequence

from loopline.data.infer import SEGMENT_MAX_LEVELS, SEGMENT_MIN_ROWS, ColumnGuess, Proposal

_HEADER = ("column", "role", "kind", "missing", "distinct", "examples", "reason")
_RIGHT_ALIGNED = {3, 4}  # counts line up on the right


def render_table(proposal: Proposal) -> str:
    """The proposal as a fixed-width text table and a few lines about label and time."""
    rows = [_cells(c) for c in proposal.columns]
    widths = [max(len(r[i]) for r in [_HEADER, *rows]) for i in range(len(_HEADER))]
    table = [_HEADER, tuple("-" * w for w in widths), *rows]
    out = [*(_aligned(r, widths) for r in table), "", *_notes(proposal)]
    return "\n".join(out) + "\n"


def _aligned(cells: Sequence[str], widths: Sequence[int]) -> str:
    parts = [
        cell.rjust(w) if i in _RIGHT_ALIGNED else cell.ljust(w)
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(parts).rstrip()


def _cells(c: ColumnGuess) -> tuple[str, ...]:
    counts = (f"{c.missing:,}", f"{c.distinct:,}")
    return (c.name, c.role, c.kind, *counts, ", ".join(c.examples), c.reason)


def _notes(proposal: Proposal) -> list[str]:
    notes = [
        _label_line(proposal),
        f"timestamp {proposal.timestamp!r}: each row's event time"
        if proposal.timestamp
        else "no timestamp column: each ingested file is stamped with its arrival time",
        f"segment column {proposal.segment_column!r}: per-segment checks split on it"
        if proposal.segment_column
        else f"no segment column: no categorical feature has 2-{SEGMENT_MAX_LEVELS} levels "
        f"with at least {SEGMENT_MIN_ROWS} rows each",
    ]
    if proposal.pii:
        notes.append(f"personal data (never copied past ingestion): {', '.join(proposal.pii)}")
    if proposal.truncated:
        notes.append(f"sampled the first {proposal.rows:,} rows of a larger file")
    return notes


def _label_line(proposal: Proposal) -> str:
    mapping = proposal.label_mapping
    values = f"{mapping.positive!r} -> 1, {mapping.negative!r} -> 0" if mapping else "already 0/1"
    counts = f"{proposal.positives:,} of {proposal.labelled:,} rows are 1"
    unlabelled = proposal.rows - proposal.labelled
    if unlabelled:
        counts += f"; {unlabelled:,} rows unlabelled"
    return f"label {proposal.label!r}: {values} ({counts})"
