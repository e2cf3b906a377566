import torch

from dialect.data.sample import collate
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.encoders.contrastive import ContrastiveConfig, ContrastiveEncoder, siglip_loss
from dialect.encoders.vit import ViT, ViTConfig
from dialect.world import WorldConfig


def test_siglip_loss_matches_hand_computation():
    img = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    scale, bias = torch.tensor(1.0), torch.tensor(-2.0)
    match = torch.eye(3, dtype=torch.bool)
    expected = 0.0
    for i in range(3):
        for j in range(3):
            logit = scale.exp() * img[i] @ txt[j] + bias
            expected -= torch.nn.functional.logsigmoid(logit if i == j else -logit)
    assert torch.allclose(siglip_loss(img, txt, scale, bias, match), expected / 3)


def test_vit_reads_inner_layers_at_any_grid_size():
    vit = ViT(ViTConfig(image_size=32, patch_size=8, dim=32, depth=3, heads=2)).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert vit.grid_features(x).shape == (2, 4, 4, 32)
    assert not torch.allclose(vit.grid_features(x, layer=-2), vit.grid_features(x))
    assert vit.grid_features(torch.rand(1, 3, 48, 48), layer=-2).shape == (1, 6, 6, 32)


def test_contrastive_encoder_learns_on_shapeworld_captions():
    torch.manual_seed(0)
    cfg = ContrastiveConfig(
        vision=ViTConfig(image_size=32, patch_size=8, dim=64, depth=2, heads=2), embed_dim=64
    )
    model = ContrastiveEncoder(cfg)
    ds = ShapeWorldDataset(WorldConfig(size=32, max_objects=1), seed=0, length=16)
    batch = collate([ds[i] for i in range(16)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        out = model.training_losses(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.5 * losses[0], losses
    assert model.retrieval_r1(batch["image"], batch["text"]) > 1 / 16


def test_samples_match_on_scene_objects_else_on_caption_text():
    from dialect.encoders.contrastive import _match_key

    red = {"shape": "circle", "color": "red", "size": "big", "x": 0.2, "y": 0.5}
    blue = {"shape": "square", "color": "blue", "size": "small", "x": 0.7, "y": 0.5}
    a = _match_key("a big red ball and a small blue box", {"scene": {"objects": [red, blue]}})
    b = _match_key("two shapes: a small blue square, a big red circle", {"scene": {"objects": [blue, red]}})
    c = _match_key("a big red ball", {"scene": {"objects": [red]}})
    assert a == b and a != c
    assert _match_key("x", {}) == _match_key("x", {}) != _match_key("y", {})


def test_grounded_patch_loss_teaches_patches_their_object_phrase():
    torch.manual_seed(0)
    cfg = ContrastiveConfig(
        vision=ViTConfig(image_size=32, patch_size=8, dim=64, depth=2, heads=2),
        embed_dim=64,
        dense_weight=1.0,
    )
    model = ContrastiveEncoder(cfg)
    ds = ShapeWorldDataset(WorldConfig(size=32, max_objects=2), seed=0, length=16)
    batch = collate([ds[i] for i in range(16)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model.training_losses(batch)
    for _ in range(25):
        out = model.training_losses(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert float(out["dense_loss"]) < 0.5 * float(first["dense_loss"])
    assert float(out["patch_acc"]) > 0.5  # of the object patches, among 81 phrases


def test_grounded_labels_follow_the_rendered_objects():
    import numpy as np

    from dialect.world import Obj, Scene
    from dialect.world.grounding import BACKGROUND, PHRASES, patch_labels

    cfg = WorldConfig(size=64)
    scene = Scene(objects=(Obj("square", "red", "large", 0.25, 0.25),), background=(255, 255, 255))
    labels = patch_labels(scene, cfg, grid=8)
    assert PHRASES[labels[2, 2]] == "large red square"  # the patch under the object's centre
    assert labels[6, 6] == BACKGROUND and (labels != BACKGROUND).sum() >= 4
    assert np.all(labels[5:, :] == BACKGROUND)
