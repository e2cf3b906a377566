"""Tar, the unified model: vocabulary, chat template, tasks, the LM and the `Dialect` pipeline."""

from dialect.unified.model import INIT_MODES, Tar, TarConfig
from dialect.unified.tasks import TASKS, JsonlTasks, ShapeWorldTasks, TaskConfig
from dialect.unified.template import ImageSpan, encode_conversation
from dialect.unified.vocab import TarVocab, VocabConfig

__all__ = [
    "INIT_MODES", "TASKS", "ImageSpan", "JsonlTasks", "ShapeWorldTasks", "Tar", "TarConfig",
    "TarVocab", "TaskConfig", "VocabConfig", "encode_conversation",
]  # fmt: skip
