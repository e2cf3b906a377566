import json

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.encoders.hf import HFVisionTower


def test_clip_tower_drops_class_token_and_uses_processor_stats(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
        image_size=32, patch_size=8,
    )  # fmt: skip
    CLIPVisionModel(cfg).save_pretrained(tmp_path / "clip")
    stats = {"image_mean": [0.48, 0.46, 0.41], "image_std": [0.27, 0.26, 0.28]}
    (tmp_path / "clip" / "preprocessor_config.json").write_text(json.dumps(stats))
    tower = HFVisionTower(tmp_path / "clip", layer=-2).eval()
    assert tower.mean.flatten().tolist() == pytest.approx(stats["image_mean"])
    x = torch.rand(2, 3, 48, 48) * 2 - 1  # resized to the tower's 32 px
    feats = tower.grid_features(x)
    assert feats.shape == (2, 4, 4, 32)
    assert not torch.allclose(feats, tower.grid_features(x, layer=-1))


def test_not_a_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DialectError, match="config.json"):
        HFVisionTower(tmp_path)
