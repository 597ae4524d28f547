"""Synthetic datasets with one file of each defect kind `data check` knows (made on the fly, no downloads)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def noise_image(seed: int, size=(40, 40), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(a, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(a, "RGB")


def make_clean_dataset(root: Path, classes=("cat", "dog"), n_train=3, n_val=2) -> Path:
    seed = 0
    for split, n in (("train", n_train), ("val", n_val)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed += 1
                noise_image(seed).save(d / f"{i}.jpg", quality=90)
    return root


def make_defect_dataset(root: Path, huge: bool = True) -> dict[str, str]:
    """A small train/val dataset plus one file of each defect; returns {defect: relative path}."""
    make_clean_dataset(root)
    t = root / "train"
    out = {}
    # truncated JPEG: a valid JPEG cut in half
    noise_image(100, (64, 64)).save(t / "cat" / "truncated.jpg", quality=95)
    data = (t / "cat" / "truncated.jpg").read_bytes()
    (t / "cat" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    out["truncated"] = "train/cat/truncated.jpg"
    (t / "cat" / "empty.jpg").write_bytes(b"")
    out["zero-byte"] = "train/cat/empty.jpg"
    noise_image(101).save(t / "cat" / "really_a_png.jpg", format="PNG")
    out["wrong-extension"] = "train/cat/really_a_png.jpg"
    (t / "cat" / "notes.jpg").write_bytes(b"this is not an image at all\n")
    out["unreadable"] = "train/cat/notes.jpg"
    noise_image(102, mode="CMYK").save(t / "dog" / "cmyk.jpg", quality=90)
    out["mode-cmyk"] = "train/dog/cmyk.jpg"
    a16 = (np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 20)
    Image.fromarray(a16).save(t / "dog" / "deep16.png")
    out["mode-16bit"] = "train/dog/deep16.png"
    noise_image(103, (12, 9)).save(t / "dog" / "tiny.png")
    out["tiny"] = "train/dog/tiny.png"
    if huge:
        # 15000 x 15000 = 225 MP > transferlearn's 200 MP guard; a 1-bit all-black PNG is only a few KB
        Image.new("1", (15000, 15000)).save(t / "dog" / "huge.png")
        out["huge"] = "train/dog/huge.png"
    shutil.copyfile(t / "cat" / "0.jpg", root / "val" / "cat" / "leaked_copy.jpg")
    out["leak"] = "val/cat/leaked_copy.jpg"
    shutil.copyfile(t / "cat" / "1.jpg", t / "dog" / "same_as_a_cat.jpg")
    out["cross-class"] = "train/dog/same_as_a_cat.jpg"
    shutil.copyfile(t / "dog" / "0.jpg", t / "dog" / "0 (copy).jpg")
    out["duplicate"] = "train/dog/0 (copy).jpg"
    (t / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 32)
    out["junk-ds_store"] = "train/.DS_Store"
    mac = root / "__MACOSX" / "train" / "cat"
    mac.mkdir(parents=True)
    (mac / "._0.jpg").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)
    out["junk-macosx"] = "__MACOSX"
    return out


def snapshot(root: Path) -> dict[str, bytes]:
    """relative path -> bytes of every file under root (to prove byte-identical restores)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
