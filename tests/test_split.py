"""`data split`: stratified, seeded, reproducible, copy/link, manifest, refuses to overwrite."""
from __future__ import annotations

import csv
import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from defects import noise_image  # noqa: E402

from transferlearn.cli import main  # noqa: E402
from transferlearn.data import DatasetError, find_splits, stratified_split, stratified_split3  # noqa: E402
from transferlearn.split import split_folder  # noqa: E402


def make_flat(root: Path, sizes={"ant": 10, "bee": 7, "蝴蝶 butterfly": 3}) -> Path:
    for ci, (c, n) in enumerate(sizes.items()):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            noise_image(ci * 100 + i, (8, 8)).save(root / c / f"img_{i:02d}.png")
    (root / ".DS_Store").write_bytes(b"x")
    (root / "ant" / "notes.txt").write_text("not an image")
    return root


def rows(dst: Path):
    with open(dst / "split_manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_stratified_split3_matches_two_way_split_and_is_stable():
    samples = [(f"c{y}/{i}.jpg", y) for y in range(3) for i in range(10 + y)]
    random.Random(1).shuffle(samples)  # input order must not matter
    tr2, va2 = stratified_split(samples, 0.2, 7)
    tr3, va3, te3 = stratified_split3(samples, 0.2, 0.0, 7)
    assert (tr2, va2, []) == (tr3, va3, te3)
    tr, va, te = stratified_split3(samples, 0.2, 0.1, 7)
    assert len(tr) + len(va) + len(te) == len(samples)
    assert not ({p for p, _ in va} & {p for p, _ in te})
    assert {y for _, y in te} == {0, 1, 2} and {y for _, y in va} == {0, 1, 2}
    # known answer: fixed for every machine and Python process (no hash randomisation involved)
    assert sorted(p for p, y in va if y == 0) == ["c0/1.jpg", "c0/7.jpg"]


def test_split_same_for_nfc_and_nfd_names():
    import unicodedata
    names = ["café.jpg", "cafe.jpg", "cafè2.jpg", "Zoë.jpg", "zoe.jpg", "ähre.jpg", "b.jpg"]
    nfc = [(f"c/{unicodedata.normalize('NFC', n)}", 0) for n in names]
    nfd = [(f"c/{unicodedata.normalize('NFD', n)}", 0) for n in names]
    norm = lambda part: [unicodedata.normalize("NFC", p) for p, _ in part]  # noqa: E731
    a, b = stratified_split3(nfc, 0.3, 0.2, 1), stratified_split3(nfd, 0.3, 0.2, 1)
    assert [norm(x) for x in a] == [norm(x) for x in b]


def test_split_copy_counts_manifest_and_train_reads_it(tmp_path, capsys):
    src = make_flat(tmp_path / "src")
    dst = tmp_path / "out"
    assert main(["data", "split", str(src), str(dst), "--val", "0.2", "--test", "0.1", "--seed", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "transferlearn train --data" in out
    r = rows(dst)
    assert len(r) == 20 and {x["method"] for x in r} == {"copy"}
    assert all((dst / x["path"]).is_file() for x in r)
    assert not (dst / "train" / "ant" / "notes.txt").exists() and not (dst / "train" / ".DS_Store").exists()
    by = {(x["split"], x["class"]) for x in r}
    assert ("test", "蝴蝶 butterfly") in by and ("val", "蝴蝶 butterfly") in by  # 3 images: 1 each
    counts = (dst / "split_counts.csv").read_text(encoding="utf-8").splitlines()
    assert counts[0] == "class,train,val,test,total" and counts[1] == "ant,7,2,1,10"
    s = find_splits(dst)
    assert s.classes == ["ant", "bee", "蝴蝶 butterfly"] and len(s.test) == 3 and len(s.val) == 4
    # the source is untouched
    assert len(list(src.rglob("*.png"))) == 20


def test_split_reproducible_and_seed_dependent(tmp_path):
    src = make_flat(tmp_path / "src")
    a = split_folder(src, tmp_path / "a", val=0.3, seed=1, progress=False)
    # a copy of the source elsewhere (another machine) gives the same split
    other = make_flat(tmp_path / "elsewhere" / "src2")
    b = split_folder(other, tmp_path / "b", val=0.3, seed=1, progress=False)
    c = split_folder(src, tmp_path / "c", val=0.3, seed=2, progress=False)
    key = lambda d: sorted((x["split"], x["source"]) for x in rows(d))  # noqa: E731
    assert key(a.dst) == key(b.dst) != key(c.dst)


def test_refuses_nonempty_dst_and_force_replaces_only_own_files(tmp_path):
    src = make_flat(tmp_path / "src")
    dst = tmp_path / "dst"
    split_folder(src, dst, val=0.2, seed=1, progress=False)
    with pytest.raises(DatasetError, match="not empty"):
        split_folder(src, dst, val=0.2, seed=2, progress=False)
    assert main(["data", "split", str(src), str(dst), "--quiet"]) == 2
    res = split_folder(src, dst, val=0.5, seed=2, force=True, progress=False)
    files = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.png"))
    assert files == sorted(x["path"] for x in rows(dst)) and sum(res.counts["val"].values()) == 5 + 4 + 2
    (dst / "val" / "ant" / "mine.png").write_bytes(b"user file")
    with pytest.raises(DatasetError, match="no earlier"):
        split_folder(src, dst, val=0.2, seed=3, force=True, progress=False)
    assert (dst / "val" / "ant" / "mine.png").exists()
    with pytest.raises(DatasetError, match="inside the source"):
        split_folder(src, src / "out", progress=False)
    with pytest.raises(DatasetError, match="already split"):
        split_folder(dst, tmp_path / "again", progress=False)


def test_link_mode_hardlinks(tmp_path):
    src = make_flat(tmp_path / "src")
    res = split_folder(src, tmp_path / "l", val=0.2, link=True, progress=False)
    assert res.methods == {"hardlink": 20}
    r = rows(tmp_path / "l")[0]
    assert os.path.samefile(tmp_path / "l" / r["path"], src / r["source"])


def test_link_falls_back_to_symlink_across_filesystems(tmp_path, monkeypatch):
    import errno

    def no_link(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    src = make_flat(tmp_path / "src")
    res = split_folder(src, tmp_path / "s", val=0.2, link=True, progress=False)
    assert res.methods == {"symlink": 20}
    r = rows(tmp_path / "s")[0]
    assert (tmp_path / "s" / r["path"]).is_symlink()
