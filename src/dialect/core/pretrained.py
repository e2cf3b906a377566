"""The checkpoint format: a folder with `config.json` + `model.safetensors` (Hugging Face style).

A model class mixes in :class:`Pretrained`, sets `config_class` to its config dataclass and takes
that config as its only constructor argument. `save_pretrained(path)` writes the config (stamped
with the class name and library version) and the weights; `from_pretrained(path)` rebuilds the
model from the config and loads the weights strictly: a missing or unexpected tensor is an error,
never a silent partial load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file

import dialect
from dialect.core.config import config_from_dict, to_dict
from dialect.core.errors import DialectError

M = TypeVar("M", bound="Pretrained")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def atomic_dir(path: str | Path, write) -> Path:
    """Call `write(tmp_dir)` and then move tmp_dir to `path`, replacing it only once writing worked.

    A crash mid-write leaves the previous folder intact (the rename is atomic on one filesystem).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        write(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


class Pretrained:
    """Mixin giving an `nn.Module` the `save_pretrained` / `from_pretrained` contract."""

    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, path: str | Path, extra_files: dict[str, str] | None = None) -> Path:
        """Write `config.json` + `model.safetensors` (+ `extra_files`: relative name -> text)
        atomically."""
        meta = {"_class": type(self).__name__, "_dialect_version": dialect.__version__}
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}

        def write(tmp: Path) -> None:
            (tmp / CONFIG_NAME).write_text(json.dumps({**meta, **to_dict(self.config)}, indent=2))
            save_file(_unshare(state), str(tmp / WEIGHTS_NAME))
            for name, text in (extra_files or {}).items():  # a name may hold a subfolder: "lm/config.json"
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_text(text)

        return atomic_dir(path, write)

    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the config and every saved tensor: equal for any two copies of
        one trained model, whatever device or folder they came from (e.g. to check that stored token
        ids were made by this tokenizer)."""
        return fingerprint(self.config, self.state_dict())

    @classmethod
    def load_config(cls, path: str | Path) -> Any:
        """Read and validate `config.json` of a saved model folder."""
        path = Path(path)
        if not path.is_dir():
            raise DialectError(f"model folder not found: {path}")
        cfg_file = path / CONFIG_NAME
        if not cfg_file.is_file():
            raise DialectError(f"{path} is not a saved model: {CONFIG_NAME} is missing")
        try:
            data = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as exc:
            raise DialectError(f"{cfg_file} is not valid JSON: {exc}") from None
        saved_class = data.pop("_class", cls.__name__)
        data.pop("_dialect_version", None)
        if saved_class != cls.__name__:
            raise DialectError(f"{path} holds a {saved_class}, not a {cls.__name__}")
        return config_from_dict(cls.config_class, data, source=str(cfg_file))

    @classmethod
    def _from_config(cls: type[M], config: Any, path: Path) -> M:
        """The empty model `from_pretrained` loads weights into; a model whose construction needs
        more than its config (e.g. a tokenizer file saved beside it) reads it from `path` here."""
        return cls(config)

    @classmethod
    def from_pretrained(cls: type[M], path: str | Path, map_location: str | torch.device = "cpu") -> M:
        """Rebuild the model from `path/config.json` and load `path/model.safetensors` strictly."""
        config = cls.load_config(path)
        weights = Path(path) / WEIGHTS_NAME
        if not weights.is_file():
            raise DialectError(f"{path} is not a saved model: {WEIGHTS_NAME} is missing")
        model = cls._from_config(config, Path(path))
        load_weights(model, weights, map_location)
        return model.to(map_location)


def fingerprint(config: Any, state: dict[str, torch.Tensor]) -> str:
    """See `Pretrained.fingerprint`: the config as sorted JSON, then each tensor's name, dtype, shape
    and bytes in name order."""
    h = hashlib.sha256(json.dumps(to_dict(config), sort_keys=True, default=str).encode())
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(state[name].shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def load_weights(
    model: torch.nn.Module, weights: str | Path, map_location: str | torch.device = "cpu"
) -> None:
    """Load a safetensors file into `model` strictly (tied weights, stored once, are allowed)."""
    state = load_file(str(weights), device=str(map_location))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not _is_tied(model, k)]
    if missing or unexpected:
        raise DialectError(
            f"{weights} does not match {type(model).__name__}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop tensors that share storage with an earlier key (safetensors refuses shared tensors)."""
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    out = {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if key in seen:
            continue
        seen[key] = k
        out[k] = v
    return out


def _is_tied(model: torch.nn.Module, name: str) -> bool:
    ptrs = {}
    for k, v in model.state_dict().items():
        ptrs.setdefault(v.untyped_storage().data_ptr(), []).append(k)
    return any(name in group and len(group) > 1 for group in ptrs.values())
