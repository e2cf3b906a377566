"""`dialect train all --preset NAME`: every model of the system, in dependency order, then one
Dialect model folder.

    encoder (teacher) -> tatok -> pixelvq -> ardtok -> difdtok -> lm  -> ROOT/model/{tar,ar,diffusion}

Every stage runs by default (`stages` picks a subset, e.g. without `difdtok` for an AR-only
model): on a 2-core CPU with native bf16 the whole tiny chain takes 59 min (2026-11-25: teacher
and TA-Tok 1,500 steps, Dif-DTok 6,000, LM 3,600), so Dif-DTok, the better drawer, is no longer
an optional extra.

Each stage runs its own recipe with its preset (`configs/<stage>/<preset>.yaml`), writing
`ROOT/<stage>/` (ROOT defaults to `runs/<preset>`) and reading the models of the stages before it
from there. A stage whose `model/` folder already exists is skipped; an interrupted stage resumes
from its last checkpoint (the trainer's resume). Wall-clock seconds per stage are recorded in
`ROOT/model/timings.json` (stages skipped in this call keep the time recorded when they ran).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dialect.core.config import load_config
from dialect.core.errors import DialectError
from dialect.train.recipes import RECIPES, preset_path

STAGES = ("encoder", "tatok", "pixelvq", "ardtok", "difdtok", "lm")
DEFAULT_STAGES = STAGES
SHIPPED = {"lm": "tar", "ardtok": "ar", "difdtok": "diffusion"}  # stage -> folder in the model


def _inputs(stage: str, root: Path) -> list[str]:
    """Overrides pointing a stage at the models of the stages it depends on."""
    m = lambda s: str(root / s / "model")  # noqa: E731
    return {
        "encoder": [],
        "tatok": [f"teacher={m('encoder')}"],
        "pixelvq": [],
        "ardtok": [f"tatok={m('tatok')}", f"pixelvq={m('pixelvq')}"],
        "difdtok": [f"tatok={m('tatok')}", f"pixelvq={m('pixelvq')}"],
        "lm": [f"tatok={m('tatok')}"],
    }[stage]


def train_all(
    preset: str,
    root: str | Path | None = None,
    stages: Sequence[str] = DEFAULT_STAGES,
    overrides: dict[str, list[str]] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train every missing stage, then assemble ROOT/model; returns that folder."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown or "lm" not in stages or "tatok" not in stages:
        raise DialectError(f"stages must include tatok and lm, from {', '.join(STAGES)}; got {list(stages)}")
    if not any(s in stages for s in ("ardtok", "difdtok")):
        raise DialectError("train all needs at least one de-tokenizer stage (ardtok or difdtok)")
    root = Path(root or f"runs/{preset}")
    timings_file = root / "model" / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    for stage in [s for s in STAGES if s in stages]:
        out = root / stage
        if (out / "model" / "config.json").is_file():
            log(f"[train all] {stage}: already trained at {out / 'model'}, skipping")
            continue
        recipe = RECIPES[stage]
        extra = (overrides or {}).get(stage, [])
        cfg = load_config(
            recipe.config_class,
            [preset_path(stage, preset)],
            [f"train.out_dir={out}", *_inputs(stage, root), *extra],
        )
        log(f"[train all] {stage}: training -> {out}")
        t0 = time.perf_counter()
        recipe.train(cfg)
        timings[stage] = round(time.perf_counter() - t0, 1)
        log(f"[train all] {stage}: done in {timings[stage] / 60:.1f} min")
    model = root / "model"
    model.mkdir(parents=True, exist_ok=True)
    for stage, name in SHIPPED.items():
        if stage in stages:
            shutil.copytree(root / stage / "model", model / name, dirs_exist_ok=True)
    timings["total"] = round(sum(v for k, v in timings.items() if k in STAGES), 1)
    timings_file.write_text(json.dumps(timings, indent=2))
    log(f"[train all] model -> {model} (stage times in {timings_file})")
    return model
