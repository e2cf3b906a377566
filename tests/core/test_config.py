from dataclasses import dataclass, field

import pytest

from dialect.core.config import config_from_dict, load_config, save_yaml
from dialect.core.errors import DialectError


@dataclass
class Inner:
    width: int = 8
    names: list[str] = field(default_factory=lambda: ["a"])


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    lr: float = 1e-3
    tag: str = "x"
    weights: dict[str, float] = field(default_factory=dict)


def test_defaults_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inner:\n  width: 16\nlr: 0.5\n")
    cfg = load_config(Outer, [f], ["inner.width=32", "tag=y"])
    assert cfg == Outer(inner=Inner(width=32), lr=0.5, tag="y")
    assert isinstance(cfg.inner, Inner)
    assert load_config(Outer, f) == load_config(Outer, str(f)) == load_config(Outer, [f])  # one path


def test_a_whole_mapping_override_replaces_a_mapping_field(tmp_path):
    """`weights={b: 1}` means these weights: merged key by key, the YAML's `a` would silently stay
    (it did: 'VQA-only' runs of 2026-12-07 trained every task)."""
    f = tmp_path / "c.yaml"
    f.write_text("weights: {a: 1.0, b: 2.0}\n")
    assert load_config(Outer, f, ["weights={b: 3.0}"]).weights == {"b": 3.0}
    assert load_config(Outer, f, ["weights.b=3.0"]).weights == {"a": 1.0, "b": 3.0}  # one entry
    # a dataclass node still merges field by field
    assert load_config(Outer, f, ["inner={width: 4}"]).inner == Inner(width=4, names=["a"])
    with pytest.raises(DialectError, match="weights"):
        load_config(Outer, f, ["weights={b: abc}"])


def test_unknown_override_key_is_one_clear_error():
    with pytest.raises(DialectError, match="inner.widht"):
        load_config(Outer, [], ["inner.widht=3"])


def test_wrong_type_and_bad_syntax():
    with pytest.raises(DialectError, match="width"):
        load_config(Outer, [], ["inner.width=abc"])
    with pytest.raises(DialectError, match="key=value"):
        load_config(Outer, [], ["lr"])


def test_malformed_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("lr: 0.1\ninner: [unclosed\n")
    with pytest.raises(DialectError, match=r"bad.yaml.*line"):
        load_config(Outer, [f])
    g = tmp_path / "list.yaml"
    g.write_text("- 1\n- 2\n")
    with pytest.raises(DialectError, match="mapping"):
        load_config(Outer, [g])
    with pytest.raises(DialectError, match="not found"):
        load_config(Outer, [tmp_path / "missing.yaml"])


def test_unknown_key_in_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lrr: 0.1\n")
    with pytest.raises(DialectError, match="lrr"):
        load_config(Outer, [f])


def test_save_and_reload_round_trip(tmp_path):
    cfg = Outer(inner=Inner(width=3, names=["p", "q"]), lr=0.25, tag="z")
    path = save_yaml(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(Outer, [path]) == cfg
    assert config_from_dict(Outer, {"inner": {"width": 5}}).inner.width == 5
