"""FID / KID pinned against torchmetrics on the same uint8 images and the same feature network."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from dialect.core.errors import DialectError
from dialect.eval.fid import (
    extract_features,
    fid_kid,
    frechet_distance,
    kernel_inception_distance,
    load_feature_network,
)

# the submodules, not torchmetrics.image: that namespace lists FID/KID only with torch-fidelity,
# which needs torchvision; with a custom feature network neither is used
FrechetInceptionDistance = pytest.importorskip("torchmetrics.image.fid").FrechetInceptionDistance
KernelInceptionDistance = pytest.importorskip("torchmetrics.image.kid").KernelInceptionDistance


class TinyFeatures(nn.Module):
    """Stands in for the FID Inception: uint8 (N, 3, H, W) -> (N, 16), same call signature."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 5, stride=2)

    def forward(self, x: torch.Tensor, return_features: bool = True) -> torch.Tensor:
        h = torch.relu(self.conv(x.float() / 127.5 - 1.0))
        return h.mean(dim=(2, 3))


class _ForTorchmetrics(nn.Module):
    def __init__(self, net) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, return_features=True)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fid") / "features.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the format of the public file
        torch.jit.script(TinyFeatures()).save(str(path))
    return load_feature_network(path)


def _images(seed: int, n: int, shift: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 200, (n, 24, 24, 3)) + shift, 0, 255).astype(np.uint8)


def test_fid_and_kid_match_torchmetrics(network):
    real, fake = _images(0, 60, 0), _images(1, 50, 40)
    ours = fid_kid(network, real, fake, "tiny", subset_size=1000)
    ref_fid = FrechetInceptionDistance(feature=_ForTorchmetrics(network))
    ref_fid.update(torch.from_numpy(real).permute(0, 3, 1, 2), real=True)
    ref_fid.update(torch.from_numpy(fake).permute(0, 3, 1, 2), real=False)
    assert ours["fid"] == pytest.approx(float(ref_fid.compute()), rel=1e-4)
    assert ours["fid"] > 0.01
    # torchmetrics' KID draws subsets of at most the smaller set: compare on two sets of 50
    fr, ff = extract_features(network, real[:50]), extract_features(network, fake)
    kid_ref = KernelInceptionDistance(feature=_ForTorchmetrics(network), subsets=1, subset_size=50)
    kid_ref.update(torch.from_numpy(real[:50]).permute(0, 3, 1, 2), real=True)
    kid_ref.update(torch.from_numpy(fake).permute(0, 3, 1, 2), real=False)
    assert kernel_inception_distance(fr, ff, subset_size=1000)[0] == pytest.approx(
        float(kid_ref.compute()[0]), rel=1e-4, abs=1e-7
    )
    assert ours["n_real"] == 60 and ours["extractor"] == "tiny" and ours["feature_dim"] == 16


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift(network):
    a = extract_features(network, _images(0, 40, 0))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    near = frechet_distance(a, extract_features(network, _images(2, 40, 5)))
    far = frechet_distance(a, extract_features(network, _images(2, 40, 50)))
    assert far > near


def test_missing_weights_name_what_is_missing(tmp_path):
    with pytest.raises(DialectError, match="inception-weights"):
        load_feature_network(None)
    with pytest.raises(DialectError, match="no feature network"):
        load_feature_network(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(DialectError, match="not a TorchScript"):
        load_feature_network(bad)


def test_eval_fid_end_to_end_and_its_clear_error(network, tmp_path, capsys):
    from dialect.cli.main import main

    assert main(["eval", "fid", "--out", str(tmp_path / "none")]) == 2
    assert "--inception-weights" in capsys.readouterr().err
    weights = tmp_path / "features.pt"
    network.save(str(weights))
    out = tmp_path / "fid"
    assert main(["eval", "fid", "--n", "6", "--inception-weights", str(weights), "--out", str(out)]) == 0
    res = __import__("json").loads((out / "results.json").read_text())
    assert res["n_real"] == res["n_fake"] == 6 and res["extractor"] == "features.pt" and res["fid"] > 0
    assert "FID (features.pt)" in (out / "results.md").read_text()
