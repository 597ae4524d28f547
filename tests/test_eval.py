"""`transferlearn eval`, its metrics and files, `visualize`, `stats` and report.html.

One tiny model is trained once per module (3 classes incl. Chinese names, 64 px, 1 epoch,
offline ImageNet MobileNetV2 weights) and evaluated through the real CLI entry point."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from conftest import CLASSES, FAST, make_dataset

# one augmented view per image in last-layer's feature cache (default 4): 5 s instead of 14 s per training here
TRAIN = {**FAST, "aug_views": 1}

from transferlearn import metrics as M
from transferlearn.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from transferlearn.trainer import train

    root = tmp_path_factory.mktemp("evaldata")
    data = make_dataset(root / "fruit", n_train=8, n_val=5)
    summary = train(data=str(data), weights="imagenet", epochs=1, project=str(root / "runs"), **TRAIN)
    return data, Path(summary["run_dir"])


@pytest.fixture(scope="module")
def evaluated(trained):
    data, run = trained
    assert main([ "eval", str(run), "--data", str(data), "--embed", "tsne"]) == 0
    return data, run


def _read_predictions(run: Path) -> list[dict]:
    raw = (run / "predictions.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "predictions.csv must be UTF-8 with BOM (Excel + Chinese)"
    with open(run / "predictions.csv", newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def test_train_writes_report(trained):
    _, run = trained
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Setup" in html and "mobilenet_v2" in html and "data:image/png;base64," in html


def test_eval_files(evaluated):
    _, run = evaluated
    for name in ("metrics.json", "predictions.csv", "confused_pairs.csv", "confused_pairs.json",
                 "confusion_matrix.png", "pr_curves.png", "roc_curves.png", "per_class.png", "mistakes.png",
                 "features_2d.png", "report.html"):
        assert (run / name).is_file(), name
    import importlib.util
    if importlib.util.find_spec("plotly") is not None:  # optional: interactive feature map
        assert "plotly" in (run / "features_2d.html").read_text(encoding="utf-8")[:200000].lower()
    for png in run.glob("*.png"):
        with Image.open(png) as im:
            assert im.size[0] > 200 and im.size[1] > 150, png


def test_metrics_agree_with_predictions_csv(evaluated):
    _, run = evaluated
    m = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    rows = _read_predictions(run)
    classes = m["classes"]
    assert sorted(classes) == sorted(CLASSES)
    assert len(rows) == m["num_samples"] == 5 * len(CLASSES)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[r["true"]] for r in rows])
    probs = np.array([[float(r[f"prob_{c}"]) for c in classes] for r in rows])
    pred = np.array([index[r["predicted"]] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    assert (probs.argmax(1) == pred).all()
    assert all(r["top1"] == r["predicted"] and float(r["top1_conf"]) >= float(r["top2_conf"]) for r in rows)
    assert [int(r["correct"]) for r in rows] == list((y == pred).astype(int))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro"]["f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["macro"]["roc_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"),
                                                  abs=1e-4)
    assert np.array(m["confusion_matrix"]).sum() == len(rows)
    assert np.trace(np.array(m["confusion_matrix"])) == int((y == pred).sum())
    assert sum(v["support"] for v in m["per_class"].values()) == len(rows)
    assert m["mistakes"] == int((y != pred).sum())
    # every mistake is listed exactly once in confused_pairs
    pairs = json.loads((run / "confused_pairs.json").read_text(encoding="utf-8"))
    listed = sorted(f["path"] for p in pairs for f in p["files"])
    assert listed == sorted(r["path"] for r in rows if r["true"] != r["predicted"])
    report = (run / "report.html").read_text(encoding="utf-8")
    assert "Evaluation: val split" in report and "哈密瓜" in report


def test_compute_metrics_known_values():
    classes = ["a", "b", "猫"]
    y = [0, 0, 1, 1, 2, 2]
    probs = np.array([[.8, .1, .1], [.3, .6, .1], [.1, .8, .1], [.2, .7, .1], [.1, .1, .8], [.5, .2, .3]])
    m = M.compute_metrics(y, probs, classes)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["a"]["precision"] == pytest.approx(0.5)  # predicted a: #0 (right), #5 (wrong)
    assert m["per_class"]["b"]["recall"] == pytest.approx(1.0)
    assert m["per_class"]["猫"]["support"] == 2
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["top_k_accuracy"] == {"1": pytest.approx(4 / 6)}  # only k < number of classes besides 1
    wrong = M.mistakes(y, probs)
    assert wrong == [1, 5]  # 0.6 confident before 0.5
    pairs = M.confused_pairs([f"f{i}" for i in range(6)], y, probs, classes)
    assert {(p["true"], p["predicted"]) for p in pairs} == {("a", "b"), ("猫", "a")}
    # a class absent from y_true: no AP/AUC for it, and macro averages skip it rather than fail
    m2 = M.compute_metrics([0, 0, 1, 1], probs[:4], classes)
    assert m2["per_class"]["猫"]["roc_auc"] is None and m2["macro"]["roc_auc"] is not None


def test_eval_split_folder_and_out(trained, tmp_path):
    """--data may be the split folder itself; --out redirects the files."""
    data, run = trained
    out = tmp_path / "ev"
    assert main(["eval", str(run / "best.pt"), "--data", str(data / "val"), "--out", str(out), "--embed", "none"]) == 0
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["num_samples"] == 15 and m["embed"] == "none"
    assert not (out / "features_2d.png").exists()
    assert main(["eval", str(run), "--data", str(data), "--split", "test", "--out", str(out)]) == 2  # no test/


def test_visualize_and_stats(trained, tmp_path):
    data, run = trained
    assert main(["visualize", "batch", "--data", str(data), "--n", "6", "--img-size", "48",
                 "--out", str(tmp_path / "batch.png")]) == 0
    assert main(["visualize", "batch", "--data", str(data), "--n", "4", "--checkpoint", str(run / "best.pt"),
                 "--augment", "strong", "--out", str(tmp_path / "strong.png")]) == 0
    assert main(["visualize", "predictions", str(run), "--data", str(data), "--n", "6",
                 "--out", str(tmp_path / "pred.png")]) == 0
    assert main(["data", "stats", str(data), "--out", str(tmp_path / "stats")]) == 0
    for p in ("batch.png", "strong.png", "pred.png", "stats/class_counts.png", "stats/image_sizes.png"):
        assert (tmp_path / p).stat().st_size > 5000, p
    stats = json.loads((tmp_path / "stats/stats.json").read_text(encoding="utf-8"))
    assert stats["counts"]["train"] == [8, 8, 8] and stats["counts"]["val"] == [5, 5, 5]
    assert stats["width"]["median"] == 48


def test_visualize_batch_denormalises():
    import torch

    from transferlearn.visualize import denormalize

    img = np.random.default_rng(0).random((8, 8, 3))
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x = (torch.tensor(img).permute(2, 0, 1) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    np.testing.assert_allclose(denormalize(x, mean, std), img, atol=1e-5)


def test_compare_report_reading(tmp_path):
    """The compare report names the winner, the margin, the time cost and over-fitting."""
    from transferlearn.report import write_compare_report

    modes = {"last-layer": dict(best_val_acc=0.95, best_epoch=3, final_train_acc=0.93, final_val_acc=0.94,
                                train_seconds=20, epochs=5, classes=2),
             "all-layers": dict(best_val_acc=0.92, best_epoch=5, final_train_acc=1.0, final_val_acc=0.85,
                                train_seconds=60, epochs=5, classes=2),
             "scratch": dict(best_val_acc=0.55, best_epoch=4, final_train_acc=0.6, final_val_acc=0.5,
                             train_seconds=58, epochs=5, classes=2)}
    (tmp_path / "summary.json").write_text(json.dumps({"best_mode": "last-layer", "modes": modes}))
    html = write_compare_report(tmp_path).read_text(encoding="utf-8")
    assert "<b>last-layer</b> won" in html
    assert "3.0 points ahead of all-layers" in html
    assert "all-layers 60 s (3.0x as long)" in html
    assert "over-fitting" in html and "close to chance" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(html: Path, png: Path, height: int = 2400) -> None:
    """Render `html` in headless Chromium (no network) to `png`."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
                        f"--window-size=1200,{height}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=60)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed: report.html not rendered")
def test_report_renders_in_chromium(evaluated, tmp_path):
    _, run = evaluated
    png = tmp_path / "report.png"
    screenshot(run / "report.html", png)
    with Image.open(png) as im:
        a = np.asarray(im.convert("L"), dtype=np.float32)
    assert a.shape == (2400, 1200)
    # a rendered page: mostly white background, but plenty of text and figures (not blank, not an error page)
    assert (a > 245).mean() > 0.5
    assert (a < 128).mean() > 0.01


def test_compare_writes_report(tmp_path):
    from transferlearn.trainer import compare

    data = make_dataset(tmp_path / "d", n_train=4, n_val=2)
    # one mode keeps it fast; the reading with several modes is checked in test_compare_report_reading
    r = compare(data=str(data), epochs=1, project=str(tmp_path / "runs"), modes=("last-layer",), **TRAIN)
    html = (Path(r["dir"]) / "report.html").read_text(encoding="utf-8")
    assert "<b>last-layer</b> won" in html and "Modes side by side" in html
    assert "last-layer/report.html" in html  # links each mode's own report
    assert (Path(r["dir"]) / "last-layer" / "report.html").is_file()


def test_eval_root_without_val_reuses_training_split(tmp_path):
    """A dataset with only train/ was split in memory for training; eval on the root evaluates that
    same held-out part (seed and fraction from the checkpoint), not the training images."""
    import shutil as sh

    from transferlearn.trainer import train

    data = make_dataset(tmp_path / "d", n_train=5, n_val=1)
    sh.rmtree(data / "val")
    s = train(data=str(data), epochs=1, val_split=0.4, project=str(tmp_path / "runs"), **TRAIN)
    assert main(["eval", s["run_dir"], "--data", str(data), "--embed", "none"]) == 0
    got = json.loads((Path(s["run_dir"]) / "metrics.json").read_text(encoding="utf-8"))
    assert got["num_samples"] == s["val_images"] == 2 * len(CLASSES)
    assert "held-out" in got["data"]


def test_eval_umap_missing_is_a_clear_error(trained, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("umap") is not None:
        pytest.skip("umap-learn is installed here: the missing-package message cannot be checked")
    data, run = trained
    assert main(["eval", str(run), "--data", str(data), "--embed", "umap", "--out", str(tmp_path / "u")]) == 2
    assert "pip install umap-learn" in capsys.readouterr().err
    assert not (tmp_path / "u" / "metrics.json").exists()


def test_eval_skips_unreadable_images(trained, tmp_path):
    data, run = trained
    val = tmp_path / "val"
    shutil.copytree(data / "val", val)
    broken = val / CLASSES[0] / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert main(["eval", str(run), "--data", str(val), "--out", str(tmp_path / "o"), "--embed", "none"]) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text(encoding="utf-8"))
    assert m["skipped_files"] == [str(broken)]
    assert m["num_samples"] == 15 == len(_read_predictions(tmp_path / "o"))


@pytest.mark.timing
def test_tsne_after_torch_is_fast():
    """Regression: with PyTorch's OpenMP threads alive, scikit-learn's t-SNE spun for 43 s on 12 points."""
    import time

    import torch

    from transferlearn.evaluate import embed_2d

    torch.nn.Conv2d(3, 16, 3)(torch.randn(4, 3, 32, 32))
    x = np.random.default_rng(0).normal(size=(40, 64))
    t = time.perf_counter()
    xy = embed_2d(x, "tsne")
    assert xy.shape == (40, 2) and np.isfinite(xy).all()
    assert time.perf_counter() - t < 10
