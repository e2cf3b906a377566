"""What every experiment's results file records: the machine line and the .json + .md pair."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

try:
    from experiments.notes import write_keeping_notes
except ImportError:  # run as a script from the repo root
    from notes import write_keeping_notes


def machine() -> str:
    """'2 CPU thread(s), x86_64, torch 2.13.0+cpu': the threads this process uses, the CPU, torch."""
    cpu = platform.processor() or platform.machine()
    return f"{torch.get_num_threads()} CPU thread(s), {cpu}, torch {torch.__version__}"


def write_results(out: Path, result: dict, md: str) -> None:
    """Write `result` to out.json and the table `md` to out.md (keeping the notes written below
    its table, see `notes.py`), then print the table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    write_keeping_notes(out.with_suffix(".md"), md)
    print(md)
