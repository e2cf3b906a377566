"""`dialect train all --preset NAME`: every model of the system, in dependency order, then one
Dialect model folder.

    encoder (teacher) -> tatok -> pixelvq -> ids -> ardtok -> difdtok -> lm  -> ROOT/model/{tar,ar,diffusion}

(`ids`: Dif-DTok's training scenes encoded once by the run's TA-Tok and pixel VQ, the pretokenized
folder its preset reads; `dialect.train.recipes.ids`. AR-DTok's 500 steps gain 17 s from it and
redrew fewer scenes, 0.304 vs 0.338 of 500, so it keeps encoding images as it trains.)

Every stage runs by default (`stages` picks a subset, e.g. without `difdtok` for an AR-only
model). On a 2-core CPU with native bf16 the tiny chain measured 56.8 min on 2026-12-07 with
compiled layers (runs/s17/model/timings.json: teacher 5.7 min, TA-Tok 3.6, pixel VQ 1.2, ids 2.7,
AR-DTok 2.1, Dif-DTok 10.4 for 10,000 steps, LM 31.1 for 3,400 steps). With the quantizer's
bf16 shortlist the same day, ids took 2.2 min, AR-DTok 2.1 and the LM 0.492 s per step instead of
0.548 (runs/s18), so the preset's 3,900 LM steps sum to about 57.2 min. Dif-DTok, the better
drawer, is not an optional extra.

Each stage runs its own recipe with its preset (`configs/<stage>/<preset>.yaml`), writing
`ROOT/<stage>/` (ROOT defaults to `runs/<preset>`) and reading the models of the stages before it
from there. A stage whose `model/` folder already exists (for ids: every shard) is skipped; an
interrupted stage resumes from its last checkpoint (the trainer's resume; ids from its last
shard). Wall-clock seconds per stage are recorded in `ROOT/model/timings.json` (stages skipped in
this call keep the time recorded when they ran).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dialect.core.config import load_config
from dialect.core.errors import DialectError
from dialect.data.tokens import pretokenized_complete
from dialect.train.recipes import RECIPES, preset_path

STAGES = ("encoder", "tatok", "pixelvq", "ids", "ardtok", "difdtok", "lm")
DEFAULT_STAGES = STAGES
SHIPPED = {"lm": "tar", "ardtok": "ar", "difdtok": "diffusion"}  # stage -> folder in the model


def _inputs(stage: str, root: Path) -> list[str]:
    """Overrides pointing a stage at its own folder and at the outputs of the stages it reads."""
    m = lambda s: str(root / s / "model")  # noqa: E731
    tokenizers = [f"tatok={m('tatok')}", f"pixelvq={m('pixelvq')}"]
    return {
        "encoder": [],
        "tatok": [f"teacher={m('encoder')}"],
        "pixelvq": [],
        "ids": tokenizers,
        "ardtok": tokenizers,
        "difdtok": [*tokenizers, f"data.path={root / 'ids'}"],
        "lm": [f"tatok={m('tatok')}"],
    }[stage] + [f"{'out_dir' if stage == 'ids' else 'train.out_dir'}={root / stage}"]


def _done(stage: str, out: Path) -> bool:
    """Whether a stage's output is complete (a model folder; for ids, every shard written)."""
    if stage == "ids":
        return pretokenized_complete(out)
    return (out / "model" / "config.json").is_file()


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
    if "difdtok" in stages and "ids" not in stages:
        raise DialectError("difdtok trains on the ids stage's scenes: list ids too")
    root = Path(root or f"runs/{preset}")
    timings_file = root / "model" / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    for stage in [s for s in STAGES if s in stages]:
        out = root / stage
        if _done(stage, out):
            log(f"[train all] {stage}: already done at {out}, skipping")
            continue
        recipe = RECIPES[stage]
        extra = (overrides or {}).get(stage, [])
        cfg = load_config(
            recipe.config_class,
            [preset_path(stage, preset)],
            [*_inputs(stage, root), *extra],
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
