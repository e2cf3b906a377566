"""Config dataclasses from YAML files and `key=value` overrides (OmegaConf structured configs).

Every model and run has one config dataclass. `load_config` merges, in order: the dataclass
defaults, a preset/YAML file, then command-line overrides such as `train.lr=1e-3`. Unknown keys,
wrong types and malformed YAML raise :class:`DialectError` with one readable line, so a typo is
never silently ignored. An override that gives a free-form mapping field a whole mapping
(`model.tasks.weights={vqa: 1.0}`) replaces it: merged key by key, the preset's other entries would
silently stay.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dialect.core.errors import DialectError

T = TypeVar("T")


def _reason(exc: OmegaConfBaseException) -> str:
    """One line: the dotted key at fault, then OmegaConf's first message line (it adds a trailer)."""
    first = str(exc).strip().splitlines()[0]
    key = getattr(exc, "full_key", None)
    return f"'{key}': {first}" if key else first


def config_from_dict(cls: type[T], data: Mapping[str, Any], source: str = "config") -> T:
    """Build dataclass `cls` from a (nested) dict; unknown keys or bad types -> DialectError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.create(dict(data)))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise DialectError(f"{source}: {_reason(exc)}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, bad syntax or a non-mapping top level -> DialectError."""
    path = Path(path)
    if not path.is_file():
        raise DialectError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise DialectError(f"malformed YAML in {path}{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DialectError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def load_config(
    cls: type[T], files: str | Path | Iterable[str | Path] = (), overrides: Iterable[str] = ()
) -> T:
    """Defaults of `cls` <- each YAML file in order (one path or several) <- `key=value` overrides
    (dotted keys)."""
    if isinstance(files, (str, Path)):  # one path, not the characters of a path
        files = [files]
    conf = OmegaConf.structured(cls)
    for f in files:
        try:
            conf = OmegaConf.merge(conf, OmegaConf.create(read_yaml(f)))
        except OmegaConfBaseException as exc:
            raise DialectError(f"{f}: {_reason(exc)}") from None
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise DialectError(f"override '{item}' is not of the form key=value")
    try:
        for item in overrides:
            key, parsed = item.split("=", 1)[0], OmegaConf.from_dotlist([item])
            value = OmegaConf.select(parsed, key)
            node = OmegaConf.select(conf, key, throw_on_missing=False)
            # a dataclass node keeps merging (`model.lm={dim: 128}` sets one field); a plain
            # mapping field is the user's whole mapping
            whole = isinstance(value, DictConfig) and isinstance(node, DictConfig)
            if whole and OmegaConf.get_type(node) is dict:
                OmegaConf.update(conf, key, value, merge=False)
            else:
                conf = OmegaConf.merge(conf, parsed)
        return OmegaConf.to_object(conf)
    except OmegaConfBaseException as exc:
        raise DialectError(f"override: {_reason(exc)}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass (nested) -> plain dict of JSON/YAML-able values."""
    return dataclasses.asdict(cfg)


def save_yaml(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (the record saved with every run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path
