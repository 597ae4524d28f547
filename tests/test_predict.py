"""`transferlearn predict` and `explain`: the Classifier API, preprocessing parity, CLI outputs, CAMs."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from transferlearn import Classifier
from transferlearn.cli import main
from transferlearn.data import eval_transform
from transferlearn.data.pixels import numpy_preprocess
from transferlearn.inference.outputs import format_table
from transferlearn.inference.predict import Prediction, collect_paths

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = sorted(["red", "blue", "苹果"])  # as in conftest.tiny_data


@pytest.fixture(scope="module")
def clf(tiny_checkpoint):
    return Classifier.load(tiny_checkpoint)


@pytest.fixture()
def messy_folder(tiny_data, tmp_path):
    """Three good images, a corrupt .jpg, an empty .png, a text file and a hidden file."""
    d = tmp_path / "messy"
    (d / "sub").mkdir(parents=True)
    for i, p in enumerate(sorted((tiny_data / "val").rglob("*.png"))[:3]):
        Image.open(p).save(d / ("sub" if i == 2 else "") / f"good{i}.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("not an image")
    (d / ".hidden.png").write_bytes(b"junk")
    return d


def test_import_is_cheap():
    code = "import sys, transferlearn; assert 'torch' not in sys.modules; from transferlearn import Classifier; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_collect_paths(tiny_data, messy_folder):
    paths, problems = collect_paths([tiny_data / "val" / "red", str(tiny_data / "val" / "blue" / "*.png"),
                                     str(messy_folder / "**" / "good*.png"), tiny_data / "nope.jpg",
                                     str(tiny_data / "*.gif")])
    assert len(paths) == 3 + 3 + 3
    assert paths[:3] == sorted(str(p) for p in (tiny_data / "val" / "red").iterdir())
    assert len(problems) == 2 and "no such file" in problems[0] and "matched no image" in problems[1]
    paths, _ = collect_paths([messy_folder])
    assert not any("hidden" in p or p.endswith(".txt") for p in paths) and len(paths) == 5


@pytest.mark.parametrize("size, mode", [((80, 72), "RGB"), ((31, 200), "L"), ((64, 64), "RGBA"), ((50, 40), "P")])
def test_numpy_preprocess_matches_training_transform(tiny_checkpoint, size, mode):
    from transferlearn.checkpoint import load
    pre = load(tiny_checkpoint)["preprocess"]
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).convert("RGB")
    ref = eval_transform(pre)(img).numpy()
    got = numpy_preprocess(img, pre)
    assert got.shape == ref.shape == (3, 64, 64) and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-5


def test_predict_folder(clf, tiny_data):
    preds = clf.predict(tiny_data / "val", topk=2, batch_size=4, workers=2)
    assert len(preds) == 9 and not clf.skipped
    assert [p.path for p in preds] == sorted(str(p) for p in (tiny_data / "val").rglob("*.png"))
    for p in preds:
        assert isinstance(p, Prediction) and p.label in CLASSES and len(p.topk) == 2
        assert p.topk[0] == (p.label, p.confidence) and p.topk[0][1] >= p.topk[1][1]
        assert abs(p.probs.sum() - 1) < 1e-5 and p["label"] == p.label
        assert set(p.to_dict()) == {"path", "label", "confidence", "topk"}
    # the classifier learned something in one epoch: red is clearly red
    assert all(p.label == "red" for p in preds if "/red/" in p.path)


def test_predict_pil_and_mixed(clf, tiny_data):
    files = sorted((tiny_data / "val" / "red").iterdir())
    by_path = clf.predict([str(f) for f in files])
    imgs = [Image.open(f) for f in files]
    by_pil = clf.predict(imgs)
    assert [p.label for p in by_pil] == [p.label for p in by_path]
    assert max(abs(a.confidence - b.confidence) for a, b in zip(by_pil, by_path)) < 1e-6
    mixed = clf.predict([files[0], imgs[1], str(files[2])])
    assert [p.path for p in mixed] == [str(files[0]), None, str(files[2])]
    assert clf.predict(files[0])[0].label == by_path[0].label  # a single path


def test_unreadable_files_are_reported_and_skipped(clf, messy_folder):
    reported = []
    preds = clf.predict(messy_folder, batch_size=2, workers=2, on_skip=reported.append)
    assert sorted(p.path.rsplit("/", 1)[1] for p in preds) == ["good0.png", "good1.png", "good2.png"]
    assert sorted(s.path.rsplit("/", 1)[1] for s in clf.skipped) == ["broken.jpg", "empty.png"]
    assert len(reported) == 2 and all(s.error for s in reported)


def test_cli_predict_outputs(tiny_checkpoint, messy_folder, tiny_data, tmp_path, capsys):
    out_csv, out_json, plots = tmp_path / "p.csv", tmp_path / "p.json", tmp_path / "plots"
    rc = main(["predict", str(tiny_checkpoint), str(messy_folder), str(tiny_data / "val" / "苹果"),
               "--topk", "3", "--csv", str(out_csv), "--json", str(out_json), "--plot", str(plots),
               "--batch-size", "4", "--workers", "0", "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "6 images predicted" in captured.out and "2 skipped" in captured.out and "img/s" in captured.out
    assert "broken.jpg" in captured.err
    raw = out_csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens Chinese labels correctly
    rows = list(csv.DictReader(open(out_csv, encoding="utf-8-sig")))
    assert len(rows) == 6 and set(rows[0]) >= {"path", "label", "confidence", "top3_label", "top3_prob"}
    obj = json.loads(out_json.read_text(encoding="utf-8"))
    assert len(obj["predictions"]) == 6 and len(obj["skipped"]) == 2 and obj["classes"] == CLASSES
    assert "苹果" in out_json.read_text(encoding="utf-8")  # not \\u-escaped
    pngs = sorted(p.name for p in plots.iterdir())
    assert len(pngs) == 6 and "苹果_0.png" in pngs
    assert Image.open(plots / pngs[0]).size[0] >= 800


def test_cli_predict_table_and_missing(tiny_checkpoint, tiny_data, tmp_path, capsys):
    assert main(["predict", str(tiny_checkpoint), str(tiny_data / "val" / "red"), "--workers", "0",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["image", "label", "conf"] and "red_0.png" in out
    assert main(["predict", str(tiny_checkpoint), str(tmp_path / "none")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_predict_onnxruntime_backend(tiny_onnx, tiny_checkpoint, tiny_data, tmp_path, capsys):
    j_onnx, j_torch = tmp_path / "o.json", tmp_path / "t.json"
    assert main(["predict", str(tiny_onnx.path), str(tiny_data / "val"), "--json", str(j_onnx), "--quiet",
                 "--workers", "0"]) == 0
    assert "backend onnxruntime" in capsys.readouterr().out
    assert main(["predict", str(tiny_checkpoint), str(tiny_data / "val"), "--json", str(j_torch), "--quiet",
                 "--workers", "0"]) == 0
    a = json.loads(j_onnx.read_text())["predictions"]
    b = json.loads(j_torch.read_text())["predictions"]
    assert [p["label"] for p in a] == [p["label"] for p in b]
    assert max(abs(x["confidence"] - y["confidence"]) for x, y in zip(a, b)) < 1e-4
    # backend onnxruntime with a checkpoint looks for the export beside it, and says how to make one
    with pytest.raises(FileNotFoundError, match="transferlearn export"):
        Classifier.load(tiny_checkpoint, backend="onnxruntime")


def test_format_table_wide_chars():
    p = Prediction(label="苹果", confidence=0.9, index=0, topk=[("苹果", 0.9), ("red", 0.1)], path="/x/a.png")
    lines = format_table([p, p], topk=2, max_rows=1).splitlines()
    assert len(lines) == 4 and "more rows" in lines[-1]


# ---------------------------------------------------------------- explain


def test_target_layer_generic():
    from transferlearn.explain import find_target_layer
    from transferlearn.models import create_model
    m = create_model("mobilenet_v2", 3, weights="none").eval()
    assert find_target_layer(m, 64)[0] == "backbone.features"  # generic search, no hint
    assert find_target_layer(m, 64, arch="mobilenet_v2")[0] == "backbone.features"
    m = create_model("resnet18", 3, weights="none").eval()
    assert find_target_layer(m, 64)[0] == "backbone.layer4"


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "eigencam"])
def test_explainer_methods(tiny_checkpoint, tiny_data, method):
    from transferlearn.explain import Explainer
    exp = Explainer.load(tiny_checkpoint, method=method)
    img = next((tiny_data / "val" / "red").iterdir())
    e = exp.explain(img)
    assert e.cam.shape == (64, 64) and np.isfinite(e.cam).all() and 0 <= e.cam.min() and e.cam.max() <= 1
    assert e.class_name == e.predicted and e.image.size == (64, 64)
    e2 = exp.explain(img, target_class="苹果")
    assert e2.class_name == "苹果" and e2.class_index == CLASSES.index("苹果")
    assert e.overlay().size == (64, 64)
    with pytest.raises(ValueError, match="not a class"):
        exp.explain(img, target_class="cat")


def test_cli_explain(tiny_checkpoint, tiny_data, tmp_path, capsys):
    out = tmp_path / "cam"
    imgs = sorted((tiny_data / "val" / "苹果").iterdir())[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    # scorecam on an early, narrow layer keeps the test fast
    assert main(["explain", str(tiny_checkpoint), *map(str, imgs), str(broken), "--method", "scorecam",
                 "--layer", "backbone.features.4", "--target-class", "red", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["苹果_0.png", "苹果_1.png"]
    assert "skipping unreadable" in capsys.readouterr().err
    assert main(["explain", str(tiny_checkpoint), str(imgs[0]), "--target-class", "cat", "-o", str(out)]) == 2


def test_cli_predict_json_to_stdout(tiny_checkpoint, tiny_data, capsys):
    assert main(["predict", str(tiny_checkpoint), str(tiny_data / "val" / "blue"), "--json", "-", "--workers", "0",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    obj = json.loads(out)  # nothing but JSON on stdout
    assert len(obj["predictions"]) == 3 and obj["backend"] == "torch"


def test_onnx_backend_fixed_batch(tmp_path):
    """A model exported without --dynamic-batch (batch 1) still predicts a batch of any size."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper
    from transferlearn.predict import OnnxBackend
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 2, 2])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("ReduceMean", ["input", "axes"], ["logits"], keepdims=0)], "g", [x], [y],
                              initializer=[helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "fixed.onnx")
    backend = OnnxBackend(tmp_path / "fixed.onnx")
    batch = np.random.default_rng(0).normal(size=(5, 3, 2, 2)).astype(np.float32)
    assert backend.fixed_batch == 1
    assert np.allclose(backend(batch), batch.mean(axis=(2, 3)), atol=1e-6)
