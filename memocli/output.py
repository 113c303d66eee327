"""Ranked results as a rich table, CSV or JSON (one row per scored photo)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, Any

from .escape import csv_writer, dumps_json, for_terminal, rich_cell
from .files import atomic_write
from .ranking import LEGEND_LINES, Ranked, shown_percentile

#: Columns of ``memo export`` (CSV header, JSON keys), in order. Documented in docs/scoring.md.
COLUMNS = ("rank", "path", "score", "percentile", "content_hash", "width", "height",
           "date_taken", "camera", "model_id", "raw_score", "burst", "kind", "group")


def to_row(r: Ranked, model_id: str) -> dict[str, Any]:
    """One photo as a plain dict with :data:`COLUMNS` as keys."""
    f = r.item
    return {
        "rank": r.rank,
        "path": f.path,
        "score": round(f.score, 6),
        "percentile": shown_percentile(r.percentile, 2),
        "content_hash": f.content_hash,
        "width": f.meta.width,
        "height": f.meta.height,
        "date_taken": f.meta.taken_at,
        "camera": f.meta.camera,
        "model_id": f.model_id or model_id,  # another variant's score: its own id
        "raw_score": round(f.raw_score, 6),
        "burst": r.burst,
        "kind": f.meta.kind,
        "group": r.group,
    }


def write_csv(ranked: Sequence[Ranked], model_id: str, out: IO[str]) -> None:
    """CSV rows (:data:`COLUMNS`), text cells safe for spreadsheets (:func:`escape.for_csv`)."""
    writer = csv_writer(out)
    writer.writerow(COLUMNS)
    for r in ranked:
        row = to_row(r, model_id)
        writer.writerow(row[k] for k in COLUMNS)


def write_json(ranked: Sequence[Ranked], model_id: str, out: IO[str]) -> None:
    """A JSON array of rows: strict JSON (:func:`escape.dumps_json`)."""
    out.write(dumps_json([to_row(r, model_id) for r in ranked], indent=2) + "\n")


def write_jsonl(ranked: Sequence[Ranked], model_id: str, out: IO[str]) -> None:
    """JSON Lines: one row object per line (strict JSON, as :func:`write_json`)."""
    for r in ranked:
        out.write(dumps_json(to_row(r, model_id)) + "\n")


WRITERS = {"csv": write_csv, "json": write_json, "jsonl": write_jsonl}
#: The format an output file's extension (any case) stands for.
FORMAT_OF_EXTENSION = {".csv": "csv", ".json": "json", ".jsonl": "jsonl"}


def write_file(ranked: Sequence[Ranked], model_id: str, out: str | os.PathLike,
               fmt: str) -> None:
    """Write ``ranked`` to ``out`` atomically (temp file + rename) in a :data:`WRITERS`
    format."""
    with atomic_write(out, "w", encoding="utf-8", newline="") as f:
        WRITERS[fmt](ranked, model_id, f)


_HEADERS = ("Rank", "Score", "Pct", "Path", "Taken", "Camera")
_RIGHT = {"Rank", "Score", "Pct"}


def _cells(ranked: Sequence[Ranked]) -> list[tuple[str, ...] | None]:
    """Table cells per row; None marks ranks left out (between --top and --bottom, or
    past a group's top), a row with only a path the start of a --group-by group. Rows in
    another order (--diverse) have no gap marks."""
    rows: list[tuple[str, ...] | None] = []
    previous = group = None
    in_rank_order = all(a.rank < b.rank for a, b in zip(ranked, ranked[1:])
                        if a.group == b.group)
    for r in ranked:
        if r.group is not None and r.group != group:
            rows.append(("", "", "", f"[{for_terminal(r.group)}]", "", ""))
            group, previous = r.group, None
        if previous is not None and r.rank > previous + 1 and in_rank_order:
            rows.append(None)
        previous = r.rank
        f = r.item
        rows.append((str(r.rank), f"{f.score:.3f}", f"{shown_percentile(r.percentile, 1):.1f}",
                     for_terminal(f.path),
                     for_terminal((f.meta.taken_at or "").replace("T", " ")),
                     for_terminal(f.meta.camera or "")))
    return rows


def print_table(ranked: Sequence[Ranked], model_id: str, total: int, out: IO[str]) -> None:
    """Rank, score, percentile, path, date taken, camera: a rich table on a terminal.

    Into a pipe or a file it is plain aligned text, one line per photo (quick for
    thousands of rows, and easy to grep); long paths never wrap there.
    """
    rows = _cells(ranked)
    summary = f"{len(ranked)} of {total} photo(s) · model {for_terminal(model_id)}"
    if not out.isatty():
        _plain_table(rows, "\n".join([summary, *LEGEND_LINES]), out)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(caption=rich_cell(summary), caption_justify="left")
    for header in _HEADERS:
        table.add_column(header, justify="right" if header in _RIGHT else "left",
                         no_wrap=header != "Path" and header != "Camera",
                         overflow="fold", ratio=1 if header == "Path" else None)
    for row in rows:
        table.add_row(*(rich_cell(cell) for cell in row or ("…", "", "", "", "", "")))
    console = Console(file=out, highlight=False)
    console.print(table)
    for line in LEGEND_LINES:  # the terminal's width, not the table's; text, never markup
        console.print(Text(line))


def _plain_table(rows: list[tuple[str, ...] | None], caption: str, out: IO[str]) -> None:
    widths = [len(h) for h in _HEADERS]
    for row in rows:
        for i, cell in enumerate(row or ()):
            widths[i] = max(widths[i], len(cell))

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if h in _RIGHT else c.ljust(w)
                         for c, w, h in zip(cells, widths, _HEADERS, strict=True)).rstrip()

    out.write(line(_HEADERS) + "\n")
    out.write(line(["-" * w for w in widths]) + "\n")
    for row in rows:
        out.write((line(row) if row else "...".rjust(widths[0])) + "\n")
    out.write(caption + "\n")
