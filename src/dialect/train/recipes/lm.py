"""Recipe for Tar, the unified LM (`dialect train lm`): captions, answers, generates and edits
images as tokens of one vocabulary.

The frozen TA-Tok comes from a trained folder (`tatok=`, from `dialect train tatok`); its config
and weights are copied into the model, so the saved folder reads images on its own. Training data
is ShapeWorld (every task, mixed by `model.tasks.weights`), a user JSONL file (`data.source=jsonl
data.path=pairs.jsonl`: captions -> caption + t2i, question/answer -> vqa, instruction/target ->
ti2i; see `unified.tasks.JsonlTasks`), a pretokenized folder (`data.source=pretokenized
data.path=DIR`, made by `dialect pretokenize` with this run's TA-Tok: images are never re-encoded;
see `train.pretokenized`), or a mix of these (`data.mix`, see `DataConfig`).

On a Hugging Face backbone (`model.hf_lm=DIR`) the run also writes `out_dir/hf`: the trained
backbone with its grown vocabulary and tokenizer, a folder plain `transformers` loads.

Fine-tuning: `init_from=DIR` starts from a saved Tar (e.g. `src/dialect/models/default/tar`, or
`runs/.../lm/model`) instead of a fresh one: its architecture, vocabulary, TA-Tok and weights are
kept (`tatok=` and the architecture keys of `model` are ignored), while the training-only keys of
`model` (`tasks`, `text_loss_weight`) and everything under `train` / `data` come from this run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from torch.utils.data import Dataset

from dialect.core.errors import DialectError
from dialect.data.build import DataConfig, build_dataset, build_mixture, transform_for
from dialect.tokenizers.tatok import TATok
from dialect.train import distributed as D
from dialect.train.config import TrainConfig
from dialect.train.pretokenized import PretokenizedTasks, check_tokenizers
from dialect.train.recipes.common import require_trained, run_training
from dialect.unified import JsonlTasks, ShapeWorldTasks, Tar, TarConfig
from dialect.world import WorldConfig


@dataclass
class LMRun:
    model: TarConfig = field(default_factory=TarConfig)
    tatok: str = "runs/tiny/tatok/model"  # trained TATok folder (the image tokenizer)
    init_from: str = ""  # a saved Tar folder to fine-tune; "" = a fresh Tar (see the module docstring)
    text_model: str = ""  # local LM folder of the text embeddings; "" = the shipped MiniLM
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/lm"))


def build_tar(cfg: LMRun) -> Tar:
    """A fresh Tar carrying the trained TA-Tok, its embeddings initialised by `model.init`; or,
    with `init_from`, that saved Tar with this run's training-only keys."""
    if cfg.init_from:
        require_trained(cfg.init_from, "Tar", "dialect train lm --preset tiny", "init_from")
        model = Tar.from_pretrained(cfg.init_from)
        model.config.tasks = cfg.model.tasks.validate(model.config.tatok.num_scales)
        model.config.text_loss_weight = cfg.model.text_loss_weight
        cfg.model = model.config  # what the run's config.yaml and exported model record
        return model
    require_trained(cfg.tatok, "TA-Tok", "dialect train tatok --preset tiny", "tatok")
    tatok = TATok.from_pretrained(cfg.tatok)
    cfg.model.tatok = tatok.config
    model = Tar(cfg.model)
    model.load_tatok(tatok)
    model.init_embeddings(text_model=cfg.text_model or None)
    return model


def build_tasks(cfg: LMRun) -> Dataset:
    """Tar's training samples from `cfg.data` (one source, or `data.mix` of several)."""
    if cfg.data.mix:
        return build_mixture(cfg.data, lambda d: _task_source(cfg, d))
    return _task_source(cfg, cfg.data)


def _task_source(cfg: LMRun, d: DataConfig) -> Dataset:
    scales = cfg.model.tatok.num_scales
    if d.source == "pretokenized":
        tokens = build_dataset(d)
        return PretokenizedTasks(tokens, cfg.model.tasks, scales, seed=d.seed, strict=d.strict)
    if d.source == "shapeworld":
        length = d.length or 2**31 - 1
        world = replace(cfg.world, size=d.size)
        return ShapeWorldTasks(cfg.model.tasks, world, scales, seed=d.seed, length=length, split=d.split)
    if d.source == "jsonl":
        if not d.path:
            raise DialectError("data.source=jsonl needs data.path=FILE.jsonl")
        return JsonlTasks(d.path, cfg.model.tasks, scales, transform_for(d), d.seed, d.strict, d.min_size)
    raise DialectError(f"the LM trains on data.source shapeworld, jsonl or pretokenized, got {d.source!r}")


def train(cfg: LMRun) -> dict:
    def build():
        model = build_tar(cfg)
        data = build_tasks(cfg)
        check_tokenizers(data, model.tatok, cfg.init_from or cfg.tatok)
        return model, data

    result = run_training(cfg, build)
    if cfg.model.hf_lm and D.launched_as_main():
        out = Path(cfg.train.out_dir)
        Tar.from_pretrained(out / "model").save_backbone(out / "hf")
    return result
