"""Grayscale (1-channel) models end to end, small images kept whole, and old checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from transferlearn.data import eval_transform, preprocess_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIGITS = ["bar", "dot", "ring"]


def _digit(kind: str, rng) -> Image.Image:
    """28x28 L image: a white shape on black plus noise, shifted a little; content reaches the border."""
    a = rng.normal(20, 10, (28, 28))
    yy, xx = np.mgrid[:28, :28]
    cx, cy = 14 + rng.integers(-3, 4), 14 + rng.integers(-3, 4)
    r = np.hypot(xx - cx, yy - cy)
    if kind == "bar":
        a[:, cx - 2:cx + 2] += 220
    elif kind == "dot":
        a[r < 6] += 220
    else:
        a[(r > 8) & (r < 11)] += 220
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")


@pytest.fixture(scope="module")
def grey_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("grey")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 4)):
        for c in DIGITS:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                _digit(c, rng).save(root / split / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def grey_run(grey_data, tmp_path_factory):
    from transferlearn.trainer import train
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = train(data=str(grey_data), arch="lenet", in_channels=1, img_size=28, mode="scratch", init="xavier",
                  epochs=2, batch_size=8, workers=0, quiet=True, project=str(tmp_path_factory.mktemp("runs")))
    finally:
        torch.set_num_threads(n)
    return s


def test_one_channel_checkpoint_records_channels_and_native_size(grey_run):
    from transferlearn.checkpoint import load, load_model
    ck = load(grey_run["run_dir"])
    pre = ck["preprocess"]
    assert pre["channels"] == 1 and pre["mean"] == [0.5] and pre["std"] == [0.5]
    assert pre["img_size"] == pre["resize"] == pre["train_size"] == 28 and pre["crop_pct"] == 1.0
    assert ck["augment"] == "pad-crop" and ck["args"]["init"] == "xavier"  # grey small images: no flip
    model, _ = load_model(grey_run["run_dir"])
    assert model.backbone.features[0].in_channels == 1
    assert grey_run["in_channels"] == 1 and grey_run["init"] == "xavier"


def test_decode_cache_stores_one_channel(grey_data, tmp_path):
    from transferlearn.cache import DecodedImages
    from transferlearn.data import find_splits
    paths = [p for p, _ in find_splits(grey_data).train]
    dec = DecodedImages.build(paths, 28, tmp_path, workers=0, quiet=True, channels=1)
    assert dec[0].shape == (28, 28, 1)
    assert sum(f.stat().st_size for f in (tmp_path / "decoded").glob("*.u8")) == len(paths) * 28 * 28
    assert np.array_equal(dec[0][:, :, 0], np.asarray(Image.open(paths[0])))  # native size: pixels unchanged
    rgb = DecodedImages.build(paths, 28, tmp_path, workers=0, quiet=True, channels=3)
    assert rgb[0].shape == (28, 28, 3)  # another cache entry, not the 1-channel one


def test_one_channel_predict_accepts_colour_and_matches_grey(grey_run, grey_data, tmp_path):
    from transferlearn.predict import Classifier
    clf = Classifier.load(grey_run["run_dir"])
    grey_path = sorted((grey_data / "val" / "dot").glob("*.png"))[0]
    colour = Image.open(grey_path).convert("RGB")
    colour.save(tmp_path / "colour.jpg", quality=100)
    a = clf.predict([str(grey_path)], workers=0)[0]
    b = clf.predict_images([colour])[0]
    assert a.label == b.label and np.allclose(a.probs, b.probs, atol=1e-6)
    assert clf.predict([str(tmp_path / "colour.jpg")], workers=0)[0].probs.shape == (3,)


def test_one_channel_export_onnx_parity_and_explain(grey_run, grey_data, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("pytorch_grad_cam")
    from transferlearn.explain import Explainer
    from transferlearn.export import export
    from transferlearn.predict import Classifier
    rep = export(grey_run["run_dir"], "onnx", tmp_path / "m.onnx", images=[str(grey_data / "val")])
    assert rep.max_abs_diff < 1e-4 and rep.pipeline_max_abs_diff is not None and rep.pipeline_max_abs_diff < 1e-3
    onnx_clf = Classifier.load(tmp_path / "m.onnx")
    torch_clf = Classifier.load(grey_run["run_dir"])
    colour = Image.open(sorted((grey_data / "val" / "ring").glob("*.png"))[0]).convert("RGB")
    p_onnx, p_torch = onnx_clf.predict_images([colour])[0], torch_clf.predict_images([colour])[0]
    assert np.allclose(p_onnx.probs, p_torch.probs, atol=1e-4)
    ts = export(grey_run["run_dir"], "torchscript", tmp_path / "m.ts.pt")
    assert ts.max_abs_diff < 1e-4
    exp = Explainer.load(grey_run["run_dir"]).explain(colour)
    assert exp.cam.shape == (28, 28) and exp.image.size == (28, 28) and exp.image.mode == "RGB"


def test_one_channel_serve_eval_and_visualize(grey_run, grey_data, tmp_path):
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    import io

    from transferlearn.evaluate import evaluate
    from transferlearn.serve import background_server, create_app
    from transferlearn.visualize import visualize_batch
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, format="JPEG")
    with background_server(create_app(grey_run["run_dir"])) as url, httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/predict?cam=1", files={"file": ("c.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["label"] in DIGITS and r.json()["cam"]["png"].startswith("data:image/png")
    m = evaluate(grey_run["run_dir"], grey_data, out=tmp_path / "eval", embed="none", workers=0, report=False,
                 log=lambda s: None)
    assert sum(c["support"] for c in m["per_class"].values()) == 12 and 0 <= m["accuracy"] <= 1
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()
    out = visualize_batch(grey_data, tmp_path / "b.png", n=4, checkpoint=grey_run["run_dir"] + "/best.pt")
    assert out.is_file()


def test_small_image_eval_keeps_the_whole_image():
    img = Image.fromarray((np.arange(28 * 28).reshape(28, 28) % 251).astype(np.uint8), "L")
    pre = preprocess_config(28, (0.5,), (0.5,), channels=1)
    x = eval_transform(pre)(img)
    expected = (torch.tensor(np.array(img)).float() / 255 - 0.5) / 0.5
    assert x.shape == (1, 28, 28) and torch.allclose(x[0], expected, atol=1e-6)  # every border pixel kept, nothing resized
    old = preprocess_config(224, (0.5,) * 3, (0.5,) * 3)
    assert old["resize"] == 256 and old["crop_pct"] == 0.875  # large images: unchanged behaviour
    from transferlearn.trainer import TrainConfig
    c = TrainConfig(data="x", mode="scratch", arch="lenet", img_size=32).resolved()
    assert c.train_size == 32 and c.augment == "pad-crop-flip"  # no 5/7 crop for small images
    assert TrainConfig(data="x", mode="scratch", arch="lenet").resolved().img_size == 32  # the arch's size
    assert TrainConfig(data="x", mode="scratch").resolved().train_size == 160


def test_digits_preset_pads_and_crops_without_flipping():
    from transferlearn.data import train_transform
    pre = preprocess_config(28, (0.5,), (0.5,), channels=1)
    a = np.zeros((28, 28), np.uint8)
    a[:, :6] = 255  # a bar on the left: a flip would move it to the right
    tf = train_transform(pre, "pad-crop")
    torch.manual_seed(0)
    for _ in range(20):
        x = tf(Image.fromarray(a, "L"))
        assert x.shape == (1, 28, 28) and x[0, :, :14].mean() > x[0, :, 14:].mean()


def test_old_checkpoint_without_channel_keys_still_loads(tiny_checkpoint, tmp_path):
    from transferlearn.predict import Classifier
    ck = torch.load(tiny_checkpoint, weights_only=True)
    for k in ("channels", "crop_pct"):
        ck["preprocess"].pop(k, None)
    torch.save(ck, tmp_path / "old.pt")
    clf = Classifier.load(tmp_path / "old.pt")
    p = clf.predict_images([Image.new("RGB", (80, 72), (200, 40, 40))])[0]
    assert p.probs.shape == (3,)


def test_compare_inits_table(grey_data, tmp_path):
    from transferlearn.cli import main
    rc = main(["compare", "--data", str(grey_data), "--arch", "lenet", "--in-channels", "1", "--img-size", "28",
               "--modes", "scratch", "--inits", "kaiming", "xavier", "--epochs", "1", "--batch-size", "16",
               "--workers", "0", "--quiet", "--project", str(tmp_path)])
    assert rc == 0
    rows = (tmp_path / "compare" / "comparison.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rows[0].startswith("mode,init,") and len(rows) == 3
    assert rows[1].startswith("scratch,kaiming,") and rows[2].startswith("scratch,xavier,")
    assert (tmp_path / "compare" / "comparison.png").is_file()
    assert (tmp_path / "compare" / "scratch-xavier" / "best.pt").is_file()


def test_data_stats_suggests_one_channel(grey_data, tmp_path):
    from transferlearn.datastats import dataset_stats
    lines = []
    s = dataset_stats(grey_data, tmp_path / "stats", log=lines.append)
    assert s["suggest_in_channels"] == 1 and s["grayscale_images"] == 48
    assert any("--in-channels 1" in line and "--img-size 28" in line for line in lines)
