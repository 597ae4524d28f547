"""Calibration (temperature scaling, ECE), "unknown" (reject rules) and test-time augmentation.

The model-level tests use `tiny_checkpoint` (1 epoch, 64 px, 3 colour classes), always copied first:
calibrating writes into the checkpoint file."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import TINY_CLASSES, TINY_COLORS, _tiny_image

from transferlearn.evaluation import metrics as M
from transferlearn.evaluation.calibrate import calibrate, fit_calibration, fit_temperature
from transferlearn.models import merge_views, reject_rule, score, threshold_for_coverage


def cli(*args, timeout=300):
    """The installed console script, running this tree's code."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([str(Path(sys.executable).parent / "transferlearn"), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def copy_run(checkpoint: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    shutil.copy(checkpoint, dest / "best.pt")
    return dest


def one_line_error(r, *words):
    assert r.returncode != 0, r.stdout[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, r.stderr[-2000:]
    for w in words:
        assert w in errors[0], errors[0]


# ---------------------------------------------------------------- calibration


def test_ece_of_known_bins():
    # two images at confidence 0.9, one right one wrong: |0.5 - 0.9| = 0.4; one at 0.6, right: |1 - 0.6| = 0.4
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    c = M.calibration_bins([0, 1, 1], probs, bins=15)
    assert c["ece"] == pytest.approx(0.4)
    assert sum(b["count"] for b in c["bins"]) == 3 and len(c["bins"]) == 15


def test_temperature_fitted_on_overconfident_logits_lowers_ece():
    rng = np.random.default_rng(0)
    n, k = 600, 4
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), labels] += 1.5  # right about 70 % of the time ...
    logits *= 8  # ... and sure of itself nearly always
    cal = fit_calibration(logits, labels)
    assert cal["temperature"] > 2
    assert cal["ece_before"] > 0.2 and cal["ece_after"] < cal["ece_before"] / 3
    assert cal["nll_after"] < cal["nll_before"]
    t = fit_temperature(logits / 8, labels)  # the same logits before the scaling need ~8x less
    assert cal["temperature"] / t == pytest.approx(8, rel=0.02)


def _confusing_data(root: Path, n=6, wrong=2) -> Path:
    """train/ as tiny_data's; val/ where `wrong` images per class have another class's colour."""
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for ci, c in enumerate(TINY_CLASSES):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                other = TINY_CLASSES[(ci + 1) % len(TINY_CLASSES)]
                colour = TINY_COLORS[other if split == "val" and i < wrong else c]
                _tiny_image(rng, colour).save(d / f"{i}.png")
    return root


def test_calibration_of_an_overconfident_model_lowers_its_ece(tiny_checkpoint, tmp_path, one_torch_thread):
    run = copy_run(tiny_checkpoint, tmp_path / "run")
    ckpt = torch.load(run / "best.pt", weights_only=True)
    head = [k for k in ckpt["model"] if k.startswith("head") and k.endswith("weight")][-1]
    ckpt["model"][head] = ckpt["model"][head] * 30  # deliberately over-confident
    ckpt["model"][head.replace("weight", "bias")] *= 30
    torch.save(ckpt, run / "best.pt")
    data = _confusing_data(tmp_path / "data")
    cal = calibrate(run, data, workers=0, device="cpu", log=lambda s: None)
    assert cal["temperature"] > 1.5, cal
    assert cal["ece_after"] < cal["ece_before"] - 0.05, cal
    stored = torch.load(run / "best.pt", weights_only=True)["calibration"]
    assert stored["temperature"] == cal["temperature"] and stored["threshold"] == cal["threshold"]
    assert json.loads((run / "calibration.json").read_text(encoding="utf-8"))["ece_after"] == cal["ece_after"]
    assert (run / "reliability.png").stat().st_size > 5000


# ---------------------------------------------------------------- unknown


def test_scores_and_threshold():
    logits = np.array([[4.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    probs, z = merge_views(logits, 2.0)
    assert np.allclose(z, logits / 2) and np.allclose(probs.sum(1), 1)
    for kind in ("msp", "energy", "maxlogit"):
        s = score(kind, probs, z)
        assert s[0] > s[1], kind  # the sure answer scores higher
    assert score("energy", probs, z)[1] == pytest.approx(np.log(np.exp(z[1]).sum()))
    assert threshold_for_coverage(np.arange(100.0), 0.95) == 5.0  # 95 of 100 are >= 5
    assert reject_rule({"threshold": 1.5, "score": "energy"}, reject="auto").threshold == 1.5
    assert reject_rule(None, reject_below=0.6).score == "msp"
    with pytest.raises(ValueError, match="transferlearn calibrate"):
        reject_rule({}, reject="auto")
    with pytest.raises(ValueError, match="between 0 and 1"):
        reject_rule(None, reject_below=60)


def _ood_images(folder: Path, n=8) -> Path:
    """Nothing like the three colour classes: black-and-white stripes of several widths."""
    folder.mkdir(parents=True)
    for i in range(n):
        a = np.zeros((72, 80, 3), np.uint8)
        a[:, (np.arange(80) // (6 + i)) % 2 == 0] = 255
        Image.fromarray(a).save(folder / f"ood_{i}.png")
    return folder


@pytest.fixture(scope="module")
def calibrated_run(tiny_checkpoint, tiny_data, tmp_path_factory):
    """A copy of tiny_checkpoint calibrated through the console script; (run, completed process)."""
    run = copy_run(tiny_checkpoint, tmp_path_factory.mktemp("calibrated") / "run")
    r = cli("calibrate", run, "--data", tiny_data, "--workers", "0", "--device", "cpu")
    return run, r


def test_calibrate_cli(calibrated_run):
    run, r = calibrated_run
    assert r.returncode == 0, r.stderr[-3000:]
    assert "temperature" in r.stdout and "ECE (15 bins)" in r.stdout and "keeps 95% of val" in r.stdout
    assert (run / "calibration.json").is_file() and (run / "reliability.png").is_file()
    cal = torch.load(run / "best.pt", weights_only=True)["calibration"]
    assert cal["score"] == "energy" and cal["images"] == 9 and cal["temperature"] > 0


def test_ood_images_are_rejected_more_often_than_val(calibrated_run, tiny_data, tmp_path, one_torch_thread):
    from transferlearn.inference.predict import Classifier
    run, _ = calibrated_run
    clf = Classifier.load(run, reject="auto")
    val = clf.predict(tiny_data / "val", workers=0)
    ood = clf.predict(_ood_images(tmp_path / "ood"), workers=0)
    val_rate = np.mean([p.unknown for p in val])
    ood_rate = np.mean([p.unknown for p in ood])
    assert val_rate <= 0.2 and ood_rate >= 0.5, (val_rate, ood_rate, [p.score for p in ood])
    assert all(p.label == "unknown" for p in ood if p.unknown) and all(p.score is not None for p in val)


def test_predict_cli_reject_auto_and_below(calibrated_run, tiny_data, tmp_path):
    run, _ = calibrated_run
    ood = _ood_images(tmp_path / "ood")
    out = tmp_path / "p.csv"
    r = cli("predict", run, tiny_data / "val", ood, "--reject", "auto", "--csv", out, "--workers", "0", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "unknown:" in r.stdout and "energy <" in r.stdout
    with open(out, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 17 and {"unknown", "score"} <= set(rows[0])
    assert any(r_["label"] == "unknown" for r_ in rows if "ood_" in r_["path"])
    assert {r_["label"] for r_ in rows if r_["unknown"] == "0"} <= set(TINY_CLASSES)  # Chinese name survives
    r = cli("predict", run, ood, "--reject-below", "0.999999", "--json", "-", "--workers", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    body = json.loads(r.stdout)
    assert body["reject"]["score"] == "msp" and all(p["unknown"] for p in body["predictions"])


def test_reject_auto_without_calibration_is_one_line_error(tiny_checkpoint, tiny_data, tmp_path):
    run = copy_run(tiny_checkpoint, tmp_path / "run")
    img = next((tiny_data / "val").rglob("*.png"))
    one_line_error(cli("predict", run, img, "--reject", "auto"), "transferlearn calibrate")
    one_line_error(cli("predict", run, img, "--reject-below", "7"), "between 0 and 1")


def test_calibrate_cli_bad_input(tiny_checkpoint, tmp_path):
    one_line_error(cli("calibrate", tmp_path / "no-such-run"), "no-such-run")
    run = copy_run(tiny_checkpoint, tmp_path / "run")
    notes = tmp_path / "notes.txt"
    notes.write_text("not images", encoding="utf-8")
    one_line_error(cli("calibrate", run, "--data", notes), "notes.txt")
    one_line_error(cli("calibrate", run, "--data", tmp_path / "missing"), "missing")
    txt = tmp_path / "weights.pt"
    txt.write_text("not a checkpoint", encoding="utf-8")
    one_line_error(cli("calibrate", txt), "weights.pt")


def test_eval_cli_calibrate_and_tta(tiny_checkpoint, tiny_data, tmp_path):
    run = copy_run(tiny_checkpoint, tmp_path / "run")
    r = cli("eval", run, "--data", tiny_data, "--calibrate", "--tta", "flip", "--embed", "none", "--workers", "0",
            "--device", "cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "calibrated on 9 val images" in r.stdout and "ECE" in r.stdout
    m = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert m["tta"] == "flip" and 0 <= m["ece"] <= 1 and m["ece_bins"] == 15 and m["temperature"] > 0
    assert m["unknown"]["score"] == "energy" and 0 <= m["unknown"]["share"] <= 1
    assert (run / "reliability.png").is_file()
    assert "Calibration" in (run / "report.html").read_text(encoding="utf-8")
    assert "calibration" in torch.load(run / "best.pt", weights_only=True)
    one_line_error(cli("eval", run, "--data", tmp_path / "nowhere", "--calibrate"), "nowhere")


def test_onnx_export_carries_the_temperature(calibrated_run, tiny_data, tmp_path, one_torch_thread):
    pytest.importorskip("onnxruntime")
    from transferlearn.inference.export import export
    from transferlearn.inference.predict import Classifier
    run, _ = calibrated_run
    rep = export(run, "onnx", tmp_path / "m.onnx", dynamic_batch=True)
    assert rep.max_abs_diff < 1e-3
    ref = Classifier.load(run, reject="auto")
    onx = Classifier.load(tmp_path / "m.onnx", reject="auto")
    assert ref.temperature != 1.0 and onx.temperature == 1.0  # T is inside the graph
    assert onx.meta["calibration"]["temperature_in_graph"] and onx.reject == ref.reject
    a, b = ref.predict(tiny_data / "val", workers=0), onx.predict(tiny_data / "val", workers=0)
    assert np.abs(np.stack([p.probs for p in a]) - np.stack([p.probs for p in b])).max() < 1e-3
    assert [p.unknown for p in a] == [p.unknown for p in b]


# ---------------------------------------------------------------- TTA


class ChannelMean(nn.Module):
    """Sees only each channel's mean: the same for an image and its mirror."""

    def __init__(self, k=3):
        super().__init__()
        self.fc = nn.Linear(3, k)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class LeftHalf(ChannelMean):
    """Sees only the left half of the image: its mirror is another picture."""

    def forward(self, x):
        return self.fc(x[..., : x.shape[-1] // 2].mean((2, 3)) * 5)


def _halves(n=4) -> list[Image.Image]:
    out = []
    for i in range(n):
        a = np.zeros((70, 90, 3), np.uint8)
        a[:, :45] = (200, 30 * i, 20)
        a[:, 45:] = (20, 60, 200)
        out.append(Image.fromarray(a))
    return out


def _classifier(model):
    from transferlearn.data import Preprocess, eval_transform
    from transferlearn.inference.predict import Classifier, TorchBackend
    torch.manual_seed(0)
    pre = Preprocess(img_size=64, resize=72, mean=(0.5,) * 3, std=(0.25,) * 3)
    return Classifier(TorchBackend(model.eval()), ["a", "b", "c"], pre, transform=eval_transform(pre))


def test_tta_view_shapes():
    from transferlearn.data import Preprocess, TTATransform, tta_views
    from transferlearn.data.pixels import numpy_preprocess
    pre = Preprocess(img_size=64, resize=72, mean=(0.5,) * 3, std=(0.25,) * 3)
    img = _halves(1)[0]
    for mode, v in (("none", 1), ("flip", 2), ("5crop", 5)):
        a = TTATransform(pre, mode)(img)
        assert a.shape == (v, 3, 64, 64) and a.dtype == np.float32
        assert all(view.size == (64, 64) for view in tta_views(img, pre, mode))
    flip = TTATransform(pre, "flip")(img)
    assert np.array_equal(flip[0], numpy_preprocess(img, pre)) and np.array_equal(flip[1], flip[0][..., ::-1])
    assert TTATransform(pre, "5crop", tensor=True)(img).shape == (5, 3, 64, 64)
    with pytest.raises(ValueError, match="--tta"):
        TTATransform(pre, "10crop")


def test_flip_tta_of_a_flip_symmetric_model_equals_no_tta():
    clf = _classifier(ChannelMean())
    imgs = _halves()
    plain = clf.predict(imgs)
    flipped = clf.configure(tta="flip").predict(imgs)
    five = clf.configure(tta="5crop").predict(imgs)
    assert len(flipped) == len(five) == 4 and flipped[0].probs.shape == (3,)
    assert np.allclose([p.probs for p in plain], [p.probs for p in flipped], atol=1e-5)
    assert np.allclose([p.probs.sum() for p in five], 1, atol=1e-5)


def test_flip_tta_of_an_asymmetric_model_averages_both_views():
    clf = _classifier(LeftHalf())
    imgs = _halves()
    plain = np.stack([p.probs for p in clf.predict(imgs)])
    mirror = np.stack([p.probs for p in clf.predict([im.transpose(Image.FLIP_LEFT_RIGHT) for im in imgs])])
    flipped = np.stack([p.probs for p in clf.configure(tta="flip").predict(imgs)])
    assert np.abs(plain - mirror).max() > 0.05  # the mirror is another picture to this model ...
    assert np.allclose(flipped, (plain + mirror) / 2, atol=1e-5)  # ... and TTA averages the two


def test_predict_cli_tta(tiny_checkpoint, tiny_data, tmp_path):
    out = tmp_path / "p.json"
    r = cli("predict", tiny_checkpoint, tiny_data / "val", "--tta", "5crop", "--json", out, "--workers", "0", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    body = json.loads(out.read_text(encoding="utf-8"))
    assert body["tta"] == "5crop" and len(body["predictions"]) == 9
    r = cli("predict", tiny_checkpoint, tiny_data / "val", "--tta", "sideways")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr


def test_serve_answers_unknown(calibrated_run, one_torch_thread):
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    import io

    from transferlearn.inference.serve import background_server, create_app
    run, _ = calibrated_run
    buf = io.BytesIO()
    Image.new("RGB", (96, 80), (200, 40, 40)).save(buf, format="PNG")
    with background_server(create_app(run, reject_below=0.999999, tta="flip")) as url:
        with httpx.Client(base_url=url, timeout=60) as c:
            health = c.get("/health").json()
            body = c.post("/predict", files={"file": ("red.png", buf.getvalue(), "image/png")}).json()
    assert health["reject"] == {"score": "msp", "threshold": 0.999999} and health["tta"] == "flip"
    assert health["temperature"] != 1.0
    assert body["label"] == "unknown" and body["unknown"] is True and body["topk"][0]["label"] in TINY_CLASSES
