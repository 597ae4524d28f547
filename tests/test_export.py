"""`transferlearn export`: ONNX and TorchScript files carry classes + preprocessing and match PyTorch."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from transferlearn.checkpoint import load as load_ckpt  # noqa: E402
from transferlearn.cli import main  # noqa: E402
from transferlearn.export import default_output, export, load_torchscript  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")

def test_onnx_file_checks_and_metadata(tiny_onnx, tiny_checkpoint):
    r = tiny_onnx
    assert r.path.is_file() and r.format == "onnx"
    assert r.max_abs_diff < 1e-3 and r.pipeline_max_abs_diff < 1e-3
    assert len(r.images) == 8  # real images from the checkpoint's data folder
    model = onnx.load(str(r.path))
    onnx.checker.check_model(model)
    props = {p.key: p.value for p in model.metadata_props}
    ckpt = load_ckpt(tiny_checkpoint)
    assert json.loads(props["classes"]) == ckpt["classes"]
    assert json.loads(props["preprocess"]) == ckpt["preprocess"]
    meta = json.loads(props["transferlearn"])
    assert meta["arch"] == "mobilenet_v2" and meta["output_kind"] == "logits"
    assert not list(r.path.parent.glob("*.data"))  # weights inside the one file


def test_onnx_dynamic_batch_matches_pytorch(tiny_onnx, tiny_checkpoint):
    from transferlearn.checkpoint import load_model
    model, ckpt = load_model(tiny_checkpoint)
    sess = ort.InferenceSession(str(tiny_onnx.path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].name == "input" and sess.get_outputs()[0].name == "logits"
    for n in (1, 5):
        x = torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(n))
        got = sess.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            ref = model(x).numpy()
        assert got.shape == (n, 3)
        assert np.abs(got - ref).max() < 1e-3


def test_torchscript_export_cli(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "m.torchscript.pt"
    assert main(["export", str(tiny_checkpoint), "--format", "torchscript", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "max abs diff" in text and "8 real image(s)" in text
    m, meta = load_torchscript(out)
    ckpt = load_ckpt(tiny_checkpoint)
    assert meta["classes"] == ckpt["classes"] and meta["preprocess"] == ckpt["preprocess"]
    x = torch.randn(3, 3, 64, 64)
    from transferlearn.checkpoint import load_model
    model, _ = load_model(tiny_checkpoint)
    with torch.no_grad():
        assert (m(x) - model(x)).abs().max().item() < 1e-3


def test_tolerance_violation_and_bad_format(tiny_checkpoint, tmp_path):
    with pytest.raises(RuntimeError, match="differs from PyTorch"):
        export(tiny_checkpoint, "torchscript", tmp_path / "x.pt", tolerance=-1.0)
    assert main(["export", str(tiny_checkpoint), "--format", "torchscript", "-o", str(tmp_path / "y.pt"),
                 "--tolerance", "-1"]) == 1
    with pytest.raises(ValueError, match="unknown export format"):
        export(tiny_checkpoint, "tflite", tmp_path / "x.tflite")


def test_default_output_paths(tmp_path):
    assert default_output(tmp_path / "best.pt", "onnx") == tmp_path / "best.onnx"
    assert default_output(tmp_path, "torchscript") == tmp_path / "best.torchscript.pt"


def test_backend_throughput_same_images(tiny_onnx, tiny_checkpoint, tiny_data):
    """Both backends on the same files agree; their throughput is printed (-s) for comparison."""
    from transferlearn import Classifier
    files = sorted(str(p) for p in (tiny_data / "train").rglob("*.jpg"))
    rates, results = {}, {}
    for name, clf in (("torch", Classifier.load(tiny_checkpoint)), ("onnxruntime", Classifier.load(tiny_onnx.path))):
        t0 = time.perf_counter()
        results[name] = clf.predict(files, batch_size=8, workers=0)
        rates[name] = len(files) / (time.perf_counter() - t0)
    print(f"\nthroughput on {len(files)} images: " + ", ".join(f"{k} {v:.0f} img/s" for k, v in rates.items()))
    a, b = results["torch"], results["onnxruntime"]
    assert [p.path for p in a] == [p.path for p in b] == files
    assert [p.label for p in a] == [p.label for p in b]
    assert max(abs(x.confidence - y.confidence) for x, y in zip(a, b)) < 1e-4


def test_missing_optional_dependency_message(capsys):
    from transferlearn.cli.extras import missing_extra
    assert missing_extra(ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")) == 2
    assert "pip install 'transferlearn[export]'" in capsys.readouterr().err
    with pytest.raises(ModuleNotFoundError):  # anything else is a real bug, not a missing extra
        missing_extra(ModuleNotFoundError("x", name="somethingelse"))
