"""Results tables that keep their hand-written notes: an experiment rewrites the table part of its
`.md` on every run, and the text after the `<!-- notes -->` line (what a person wrote about the
numbers) is carried over unchanged."""

from __future__ import annotations

from pathlib import Path

MARK = "<!-- notes -->"


def write_keeping_notes(md: Path, table: str) -> None:
    """Write `table` to `md`, followed by the notes of the file already there (if any)."""
    old = md.read_text() if md.is_file() else ""
    notes = old.split(MARK, 1)[1] if MARK in old else "\n"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(table.rstrip("\n") + "\n\n" + MARK + notes)
