"""Data discovery, validation, decoding and splitting."""
import io

import numpy as np
import pytest
from PIL import Image

from transferlearn.data import DatasetError, find_splits, make_loader, eval_transform, preprocess_config
from transferlearn.files import load_rgb
from transferlearn.trainer import train

from conftest import FAST, make_dataset, make_image


def test_hidden_and_junk_never_become_classes_or_samples(dataset):
    (dataset / "train" / "__MACOSX").mkdir()
    make_image((1, 2, 3)).save(dataset / "train" / "__MACOSX" / "x.jpg")
    (dataset / "train" / ".ipynb_checkpoints").mkdir()
    (dataset / "train" / "香蕉" / ".DS_Store").write_bytes(b"\0\0junk")
    (dataset / "train" / "香蕉" / "Thumbs.db").write_bytes(b"junk")
    make_image((1, 2, 3)).save(dataset / "train" / "香蕉" / "._0.jpg")  # macOS resource fork twin
    (dataset / "val" / ".hidden").mkdir()
    s = find_splits(dataset)
    assert s.classes == sorted(["苹果-红", "香蕉", "哈密瓜"])
    assert len(s.train) == 24 and len(s.val) == 12
    assert not any("/." in p or "__MACOSX" in p or "Thumbs" in p for p, _ in s.train + s.val)


def test_val_class_unknown_to_train_is_named(dataset):
    (dataset / "val" / "榴莲").mkdir()
    make_image((0, 0, 0)).save(dataset / "val" / "榴莲" / "a.jpg")
    with pytest.raises(DatasetError, match="榴莲"):
        find_splits(dataset)


def test_empty_class_is_an_error(dataset):
    (dataset / "train" / "空").mkdir()
    with pytest.raises(DatasetError, match="空.*no images"):
        find_splits(dataset)


def test_missing_val_folder_gives_stratified_seeded_split(tmp_path):
    root = make_dataset(tmp_path / "d", n_train=10, n_val=0)
    import shutil
    shutil.rmtree(root / "val")
    a = find_splits(root, val_split=0.2, seed=3)
    b = find_splits(root, val_split=0.2, seed=3)
    c = find_splits(root, val_split=0.2, seed=4)
    assert a.val == b.val and a.val != c.val
    assert a.counts("val") == [2, 2, 2] and a.counts("train") == [8, 8, 8]
    assert not set(p for p, _ in a.val) & set(p for p, _ in a.train)
    with pytest.raises(DatasetError, match="--val-split"):
        find_splits(root, val_split=0)


def _pixels(path):
    return np.asarray(load_rgb(path))


def test_every_pil_mode_becomes_rgb(tmp_path):
    rgb = make_image((10, 200, 30), size=16)
    cases = {
        "rgba.png": rgb.convert("RGBA"),
        "la.png": rgb.convert("LA"),
        "gray.png": rgb.convert("L"),
        "palette.gif": rgb.convert("P"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "bmp.bmp": rgb,
        "webp.webp": rgb,
        "tiff.tiff": rgb,
        "one.png": rgb.convert("1"),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
    # 16-bit grayscale PNG
    a16 = (np.linspace(0, 65535, 256).reshape(16, 16)).astype(np.uint16)
    Image.fromarray(a16).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    for f in sorted(tmp_path.iterdir()):
        im = load_rgb(f)
        assert im.mode == "RGB" and im.size == (16, 16), f.name
    g16 = _pixels(tmp_path / "gray16.png")
    assert g16[0, 0, 0] == 0 and g16[-1, -1, 0] == 255  # full range kept, not clipped to white
    # transparent pixels composite onto white
    t = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    t.save(tmp_path / "clear.png")
    assert (_pixels(tmp_path / "clear.png") == 255).all()


def test_exif_orientation_is_honoured(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert load_rgb(tmp_path / "rot.jpg").size == (20, 40)


def test_corrupt_file_is_reported_and_skipped(dataset, tmp_path, capsys):
    bad = dataset / "train" / "香蕉" / "broken.jpg"
    buf = io.BytesIO()
    make_image((1, 1, 1), size=64).save(buf, "JPEG")
    bad.write_bytes(buf.getvalue()[:200])  # truncated
    (dataset / "train" / "香蕉" / "empty.png").write_bytes(b"")
    (dataset / "val" / "香蕉" / "notimage.jpg").write_text("hello")
    s = train(data=str(dataset), epochs=1, project=str(tmp_path / "runs"), **FAST)
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "empty.png" in err and "notimage.jpg" in err
    assert s["val_images"] == 13  # the unreadable file is skipped, not counted


def test_loader_skips_unreadable_in_batches(dataset):
    (dataset / "val" / "香蕉" / "zzz.jpg").write_bytes(b"not a jpeg")
    s = find_splits(dataset)
    dl = make_loader(s.val, eval_transform(preprocess_config(32, (0.5,) * 3, (0.5,) * 3)), 64, False, 0)
    batches = [b for b in dl if b is not None]
    assert sum(len(b[1]) for b in batches) == 12
