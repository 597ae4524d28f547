"""The frozen backbone on onnxruntime: the same features as PyTorch, exported once, and a safe fallback."""
import sys

import pytest
import torch

from transferlearn import models
from transferlearn.train.frozen import backbone_runner

pytest.importorskip("onnxruntime")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return models.create_model("mobilenet_v2", 3, weights="imagenet").backbone.eval()


def test_onnxruntime_features_match_pytorch_at_any_size(backbone, tmp_path):
    run = backbone_runner(backbone, "auto", CPU, "off", 3, tmp_path)
    assert run.engine == "onnxruntime"
    for size in (48, 64):  # one exported graph, two image sizes (all-layers' warm-up: train and val sizes)
        x = torch.randn(5, 3, size, size)
        with torch.no_grad():
            ref = backbone(x)
        got = run(x)
        assert run.checked[(3, size, size)] is True
        assert got.dtype == torch.float32 and got.shape == ref.shape
        assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), float((got - ref).abs().max())
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1


def test_export_is_reused_for_the_same_weights_and_redone_for_others(backbone, tmp_path):
    backbone_runner(backbone, "auto", CPU, "off", 3, tmp_path)
    (first,) = (tmp_path / "onnx").glob("*.onnx")
    stamp = first.stat().st_mtime_ns
    backbone_runner(backbone, "auto", CPU, "off", 3, tmp_path)
    assert first.stat().st_mtime_ns == stamp and len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    other = models.create_model("mobilenet_v2", 3, weights="none").backbone.eval()
    backbone_runner(other, "auto", CPU, "off", 3, tmp_path)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2


def test_features_that_disagree_fall_back_to_pytorch(backbone, tmp_path):
    notes = []
    run = backbone_runner(backbone, "auto", CPU, "off", 3, tmp_path, log=notes.append)
    run.onnx = lambda x: torch.zeros(x.shape[0], 1280)  # as an op exported for one size only would
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(run(x), backbone(x), atol=1e-5)
    assert run.checked[(3, 48, 48)] is False and "differ" in notes[-1]


def test_torch_runtime_and_missing_onnxruntime(backbone, tmp_path, monkeypatch):
    assert backbone_runner(backbone, "torch", CPU, "bf16", 3, tmp_path).engine == "torch bf16"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    notes = []
    run = backbone_runner(backbone, "onnxruntime", CPU, "off", 3, tmp_path, log=notes.append)
    assert run.engine == "torch" and "not installed" in notes[-1]
    notes.clear()
    assert backbone_runner(backbone, "auto", CPU, "off", 3, tmp_path, log=notes.append).engine == "torch"
    assert not notes  # auto says nothing when it simply is not there
    with pytest.raises(ValueError, match="--backbone-runtime"):
        backbone_runner(backbone, "tensorrt", CPU, "off", 3, tmp_path)


def test_last_layer_run_is_the_same_on_either_engine(dataset, tmp_path):
    from transferlearn.train import train
    from conftest import FAST
    kw = dict(data=str(dataset), mode="last-layer", epochs=2, project=str(tmp_path), **{**FAST, "amp": "off"})
    a = train(backbone_runtime="torch", **kw)
    b = train(backbone_runtime="onnxruntime", **kw)
    assert abs(a["best_val_acc"] - b["best_val_acc"]) < 1e-9
