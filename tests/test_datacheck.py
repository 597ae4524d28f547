"""`data check`: every defect kind is found, --json, exit codes, --fix moves and --undo restores byte-identical."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from defects import make_clean_dataset, make_defect_dataset, snapshot  # noqa: E402

from transferlearn import datacheck  # noqa: E402
from transferlearn.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def defect_src(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("defects") / "ds"
    return root, make_defect_dataset(root)


@pytest.fixture
def defects(defect_src, tmp_path) -> tuple[Path, dict]:
    src, made = defect_src
    root = tmp_path / "ds"
    shutil.copytree(src, root)
    return root, made


def test_every_defect_kind_found(defect_src):
    root, made = defect_src
    rep = datacheck.check(root, progress=False)
    kinds = {}
    for k, p, _ in rep.findings():
        kinds.setdefault(p, set()).add(k)
    expect = {"truncated": "truncated", "zero-byte": "zero-byte", "wrong-extension": "wrong-extension",
              "unreadable": "unreadable", "mode-cmyk": "mode", "mode-16bit": "mode", "tiny": "tiny", "huge": "huge",
              "leak": "leak", "cross-class": "cross-class", "duplicate": "duplicate", "junk-ds_store": "junk",
              "junk-macosx": "junk"}
    for defect, kind in expect.items():
        assert kind in kinds.get(made[defect], set()), (defect, kinds.get(made[defect]))
    # both copies of a cross-class duplicate are flagged (which label is right is unknown)
    assert "cross-class" in kinds["train/cat/1.jpg"]
    # the originals of a leak/duplicate are kept, clean files have no findings
    assert "train/cat/0.jpg" not in kinds and "train/dog/0.jpg" not in kinds and "val/dog/0.jpg" not in kinds
    assert not rep.clean
    rows = {(r["split"], r["class"]): r for r in rep.table_rows()}
    assert rows[("train", "cat")]["truncated"] == 1 and rows[("val", "cat")]["leak"] == 1
    assert rows[("train", "dog")]["mode"] == 2


def test_cli_table_json_and_exit_codes(defect_src, tmp_path, capsys):
    root, _ = defect_src
    assert main(["data", "check", str(root), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "train  cat" in out and "leak (problem, 1)" in out and "val/cat/leaked_copy.jpg" in out
    assert main(["data", "check", str(root), "--json"]) == 1
    js = json.loads(capsys.readouterr().out)
    assert js["clean"] is False and {f["kind"] for f in js["findings"]} >= {"truncated", "leak", "junk", "huge"}
    clean = make_clean_dataset(tmp_path / "clean")
    assert main(["data", "check", str(clean), "--quiet"]) == 0
    assert "clean: no problems found" in capsys.readouterr().out


def test_min_size_and_max_pixels_options(tmp_path):
    root = make_clean_dataset(tmp_path / "c")  # 40x40 images
    assert datacheck.check(root, min_size=32, progress=False).clean
    rep = datacheck.check(root, min_size=64, max_pixels=1000, progress=False)
    kinds = {k for k, _, _ in rep.findings()}
    assert kinds == {"tiny", "huge"} or kinds == {"huge"}  # huge images are not decoded, so not also 'tiny'


def test_fix_moves_outside_and_undo_restores_byte_identical(defects, capsys):
    root, made = defects
    before = snapshot(root)
    q = root.parent / "ds_quarantine"
    assert main(["data", "check", str(root), "--quiet", "--fix"]) == 1  # the tiny image stays: still a warning
    assert q.is_dir() and (q / datacheck.MANIFEST).is_file()
    for defect in ("truncated", "zero-byte", "wrong-extension", "unreadable", "huge", "leak", "cross-class",
                   "duplicate", "junk-ds_store", "junk-macosx"):
        assert not (root / made[defect]).exists(), defect
        assert (q / made[defect]).exists(), defect
    assert (root / made["tiny"]).exists() and (root / made["mode-cmyk"]).exists()
    assert (root / "train/cat/0.jpg").exists()  # a leak's train copy stays
    # nothing deleted: every byte is in the dataset or the quarantine
    after = snapshot(root)
    quarantined = {k: v for k, v in snapshot(q).items() if k != datacheck.MANIFEST}
    assert len(after) + len(quarantined) == len(before)
    # what is left is clean apart from the tiny image
    rep = datacheck.check(root, progress=False)
    assert {k for k, _, _ in rep.findings(datacheck.PROBLEM_KINDS + datacheck.WARNING_KINDS)} == {"tiny"}
    capsys.readouterr()
    assert main(["data", "check", "--undo", str(q)]) == 0
    assert "restored" in capsys.readouterr().out
    assert snapshot(root) == before
    assert not (q / datacheck.MANIFEST).exists()


def test_fix_exit_0_when_nothing_left_and_quarantine_inside_refused(tmp_path):
    root = make_clean_dataset(tmp_path / "d")
    (root / "train" / "cat" / "bad.jpg").write_bytes(b"")
    rep = datacheck.check(root, progress=False)
    with pytest.raises(ValueError, match="inside the dataset"):
        datacheck.fix(rep, root / "q")
    assert main(["data", "check", str(root), "--quiet", "--fix", "--quarantine", str(tmp_path / "q")]) == 0
    assert (tmp_path / "q" / "train" / "cat" / "bad.jpg").exists()


def test_undo_never_overwrites(tmp_path):
    root = make_clean_dataset(tmp_path / "d")
    (root / "train" / "cat" / "bad.jpg").write_bytes(b"")
    datacheck.fix(datacheck.check(root, progress=False), tmp_path / "q", log=lambda m: None)
    (root / "train" / "cat" / "bad.jpg").write_bytes(b"new")
    res = datacheck.undo(tmp_path / "q", log=lambda m: None)
    assert res == {"restored": 0, "skipped": 1, "missing": 0}
    assert (root / "train" / "cat" / "bad.jpg").read_bytes() == b"new"
    assert (tmp_path / "q" / "train" / "cat" / "bad.jpg").exists()


def test_plain_class_folder_layout(tmp_path):
    root = tmp_path / "flat"
    make_clean_dataset(tmp_path / "tmp")
    shutil.copytree(tmp_path / "tmp" / "train", root)
    (root / "README.txt").write_text("hi")
    (root / "cat" / "labels.csv").write_text("a,b")
    (root / "empty_class").mkdir()
    rep = datacheck.check(root, progress=False)
    assert rep.layout == "classes"
    f = {p: k for k, p, _ in rep.findings()}
    assert f == {"README.txt": "ignored", "cat/labels.csv": "ignored", "empty_class": "empty-class"}


def test_unknown_val_class(tmp_path):
    root = make_clean_dataset(tmp_path / "d")
    shutil.copytree(root / "val" / "cat", root / "val" / "cow")
    rep = datacheck.check(root, progress=False)
    assert ("unknown-class", "val/cow") in {(k, p) for k, p, _ in rep.findings()}
