"""`data audit`: planted label flips, a near-duplicate across classes and an outlier are found; bad input gets a
named error; nothing moves without --fix, and `data check --undo` brings back what --fix moved."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cleanlab")

from transferlearn.datatools import audit as A  # noqa: E402
from transferlearn.errors import DatasetError  # noqa: E402

CLASSES = ["red", "blue", "苹果"]
COLORS = {"red": (210, 40, 40), "blue": (40, 60, 210), "苹果": (60, 180, 60)}
FAST = dict(arch="mobilenet_v2", img_size=64, batch_size=16, quiet=True, log=lambda *a: None)


def noisy(color, seed: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(np.clip(rng.normal(0, 20, (size, size, 3)) + np.array(color), 0, 255).astype(np.uint8))


def make_audit_data(root: Path, n: int = 16) -> dict:
    """DIR/train/<class>/ (n images each) and DIR/val/<class>/ (4 each), plus what the audit should find: three
    images of another colour filed under a wrong class, a copy of one image under a second class, and a
    checkerboard among the colours."""
    for split, k in (("train", n), ("val", 4)):
        for ci, c in enumerate(CLASSES):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(k):
                noisy(COLORS[c], seed=1000 * ci + 100 * (split == "val") + i).save(d / f"{c}_{i}.png")
    flips = {"train/blue/flip_0.png": "red", "train/苹果/flip_1.png": "blue", "train/red/flip_2.png": "苹果"}
    for j, (path, true) in enumerate(flips.items()):
        noisy(COLORS[true], seed=9000 + j).save(root / path)
    shutil.copy(root / "train/red/red_3.png", root / "val/blue/copy_of_red_3.png")
    board = (np.indices((64, 64)).sum(0) // 8 % 2 * 255).astype(np.uint8)
    Image.fromarray(np.stack([board] * 3, -1)).save(root / "train/blue/checkerboard.png")
    return {"flips": set(flips), "duplicate": {"train/red/red_3.png", "val/blue/copy_of_red_3.png"},
            "outlier": "train/blue/checkerboard.png"}


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit") / "colours"
    planted = make_audit_data(root)
    before = files_under(root)
    result = A.audit_dataset(root, **FAST)
    return root, planted, before, result


# ---------------------------------------------------------------- the statistics, on planted features

def test_probes_and_cleanlab_find_planted_flips_in_feature_space():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, 32)) * 3
    labels = np.repeat(np.arange(4), 60)
    feats = centres[labels] + rng.normal(0, 1, (240, 32))
    flipped = rng.choice(240, 12, replace=False)
    given = labels.copy()
    given[flipped] = (labels[flipped] + rng.integers(1, 4, 12)) % 4
    probs = A.out_of_fold_probs(feats, given, folds=5)
    found = A.label_issues(given, probs)
    top = set(found[:12])
    assert len(top & set(flipped.tolist())) >= 11  # recall of the top-N list, N = planted
    assert set(flipped.tolist()) <= set(found)
    assert all(probs[i, given[i]] <= probs[j, given[j]] for i, j in zip(found, found[1:]))  # least likely first


def test_near_duplicates_and_outliers_in_feature_space():
    rng = np.random.default_rng(1)
    feats = np.abs(rng.normal(0, 1, (50, 16)))
    labels = np.arange(50) % 2
    feats[7] = feats[4] * 1.0001  # image 7 (class 1) is image 4 (class 0), a little brighter
    feats[9] = feats[1] * 1.0001  # a copy within one class (1 and 9 are both class 1): not a cross-class pair
    feats[20] = -5 * np.ones(16)  # far from every other image
    dist, idx = A.neighbours(feats, k=5)
    assert dist.shape == idx.shape == (50, 5) and not (idx == np.arange(50)[:, None]).any()
    pairs = A.cross_class_duplicates(dist, idx, labels, 0.98)
    assert [(a, b) for a, b, _ in pairs] == [(4, 7)]
    d, z = A.outlier_scores(dist)
    assert int(np.argmax(z)) == 20 and z[20] > 5 and (np.delete(z, 20) < 5).all()


# ---------------------------------------------------------------- the audit of a folder of images

def test_audit_finds_planted_flips_duplicate_and_outlier(audited):
    root, planted, before, result = audited
    issues = {r["path"]: r for r in result.issues}
    assert planted["flips"] <= set(issues), result.issues
    for path, true in (("train/blue/flip_0.png", "red"), ("train/苹果/flip_1.png", "blue")):
        assert issues[path]["suggested_label"] == true
        assert issues[path]["self_confidence"] < 0.5 < issues[path]["suggested_confidence"]
    assert [r["rank"] for r in result.issues] == list(range(1, len(result.issues) + 1))
    # the planted problems first: nothing else in this data is mislabelled
    assert planted["flips"] <= {r["path"] for r in result.issues[:5]}
    # the exact copy first; the other pairs all hold a planted image (a flip looks like its true class's images)
    assert {result.duplicates[0]["path"], result.duplicates[0]["other_path"]} == planted["duplicate"]
    assert result.duplicates[0]["similarity"] >= 0.999
    wrong = planted["flips"] | planted["duplicate"] - {"train/red/red_3.png"}
    assert all({r["path"], r["other_path"]} & wrong for r in result.duplicates), result.duplicates
    assert result.outliers and result.outliers[0]["path"] == planted["outlier"]
    assert result.images == len(before) and not result.skipped
    assert files_under(root) == before  # nothing moved, nothing written in DATA
    line = result.summary()
    assert f"likely label error(s) in {len(before)} images" in line and "near-duplicate pair(s)" in line


def test_audit_writes_csv_json_and_html_with_utf8_names(audited, tmp_path):
    import json

    root, planted, _, result = audited
    files = A.write_audit(result, tmp_path / "out")
    with open(files["issues"], encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == A.ISSUE_COLUMNS
    assert "train/苹果/flip_1.png" in {r["path"] for r in rows}
    assert "苹果" in {r["given_label"] for r in rows} | {r["suggested_label"] for r in rows}
    meta = json.loads(files["json"].read_text(encoding="utf-8"))
    assert meta["label_issues"] == len(result.issues) and meta["classes"] == sorted(CLASSES) and meta["folds"] == 10
    page = files["html"].read_text(encoding="utf-8")
    assert page.count("data:image/jpeg;base64,") == len(result.issues) + 2 * len(result.duplicates) + len(result.outliers)
    assert "flip_1.png" in page and "苹果" in page and "checkerboard.png" in page


def test_fix_moves_chosen_files_and_undo_brings_them_back(audited, tmp_path):
    from transferlearn.datatools import quarantine

    src, planted, before, result = audited
    root = tmp_path / "copy"
    shutil.copytree(src, root)
    q = tmp_path / "q"
    moved = quarantine.move_aside(root, A.fix_rows(result, ("issues", "outliers")), q, log=lambda m: None)
    gone = {m["original"] for m in moved}
    assert planted["flips"] | {planted["outlier"]} <= gone
    assert not any((root / p).exists() for p in gone) and all((q / p).is_file() for p in gone)
    assert any("label-issue: labelled" in r for m in moved for r in m["reasons"])
    assert quarantine.undo(q, log=lambda m: None) == {"restored": len(gone), "skipped": 0, "missing": 0}
    assert files_under(root) == before


def test_fix_from_an_edited_csv(audited, tmp_path):
    from transferlearn.datatools import quarantine
    from transferlearn.runs import write_csv

    src, planted, _, result = audited
    root = tmp_path / "copy"
    shutil.copytree(src, root)
    chosen = [r for r in result.issues if r["path"] in planted["flips"]][:2]  # the user kept the rest
    write_csv(tmp_path / "chosen.csv", chosen, A.ISSUE_COLUMNS)
    todo = A.fix_from_csv(root, tmp_path / "chosen.csv")
    moved = quarantine.move_aside(root, todo, tmp_path / "q", log=lambda m: None)
    assert sorted(m["original"] for m in moved) == sorted(r["path"] for r in chosen)
    with pytest.raises(DatasetError, match="not under"):  # the same list again: those files are gone
        A.fix_from_csv(root, tmp_path / "chosen.csv")
    (tmp_path / "other.csv").write_text("file,label\na.png,x\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no 'path' column"):
        A.fix_from_csv(root, tmp_path / "other.csv")


# ---------------------------------------------------------------- bad input

def test_one_class_is_a_named_error(tmp_path):
    d = tmp_path / "one" / "red"
    d.mkdir(parents=True)
    for i in range(6):
        noisy(COLORS["red"], i).save(d / f"{i}.png")
    with pytest.raises(DatasetError, match="one class"):
        A.audit_dataset(tmp_path / "one", **FAST)


def test_class_with_fewer_images_than_folds_is_a_named_error(tmp_path):
    for c, n in (("red", 8), ("blue", 3)):
        d = tmp_path / "few" / c
        d.mkdir(parents=True)
        for i in range(n):
            noisy(COLORS[c], i).save(d / f"{i}.png")
    with pytest.raises(DatasetError, match=r"blue \(3\).*--folds 5.*--folds 3"):
        A.audit_dataset(tmp_path / "few", folds=5, **FAST)
    # without --folds the default 10 comes down to the smallest class, at least 2
    assert A.auto_folds(np.array([0] * 8 + [1] * 3)) == 3 and A.auto_folds(np.array([0] * 40 + [1] * 30)) == 10
    assert A.auto_folds(np.array([0] * 8 + [1] * 1)) == 2
    with pytest.raises(DatasetError, match="at least 2"):
        A.audit_dataset(tmp_path / "few", folds=1, **FAST)


def test_undecodable_files_are_skipped_by_path(tmp_path):
    root = tmp_path / "broken"
    for ci, c in enumerate(CLASSES[:2]):
        d = root / c
        d.mkdir(parents=True)
        for i in range(6):
            noisy(COLORS[c], 10 * ci + i).save(d / f"{i}.png")
    (root / "red" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    before = files_under(root)
    result = A.audit_dataset(root, **FAST)
    assert result.skipped == ["red/truncated.jpg"] and result.images == 12
    assert "1 unreadable file(s) skipped" in result.summary()
    assert files_under(root) == before


def test_arch_and_run_together_are_refused(tmp_path, tiny_data):
    with pytest.raises(ValueError, match="not both"):
        A.audit_dataset(tiny_data, run=tmp_path, **FAST)


def test_features_from_a_trained_run(tiny_data, tiny_checkpoint):
    result = A.audit_dataset(tiny_data, run=tiny_checkpoint.parent, folds=3, quiet=True, log=lambda *a: None)
    assert result.info["features"] == f"the backbone of {tiny_checkpoint.parent}"
    assert result.info["arch"] == "mobilenet_v2" and result.info["img_size"] == 64  # the run's preprocessing
    assert result.images == 33 and result.probe_accuracy > 0.9  # three colours: the probes separate them


def test_missing_cleanlab_is_named_before_any_work(monkeypatch, tmp_path):
    import importlib.util

    from transferlearn.errors import MissingExtra
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cleanlab" else real(name, *a))
    with pytest.raises(MissingExtra, match=r"pip install 'transferlearn\[audit\]'"):
        A.audit_dataset(tmp_path / "not-even-there", **FAST)


# ---------------------------------------------------------------- the command, as a user runs it

def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([str(Path(sys.executable).parent / "transferlearn"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=300)


def test_cli_audit_then_fix_then_undo(tmp_path):
    root = tmp_path / "colours"
    planted = make_audit_data(root)
    before = files_under(root)
    r = cli("data", "audit", str(root), "--arch", "mobilenet_v2", "--img-size", "64", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "runs" / "audit-colours"
    for name in ("label_issues.csv", "near_duplicates.csv", "outliers.csv", "audit.json", "audit.html"):
        assert (out / name).is_file(), name
    assert "likely label error(s) in" in r.stdout and "nothing was moved" in r.stdout
    assert "train/苹果/flip_1.png" in (out / "label_issues.csv").read_text(encoding="utf-8-sig")
    assert files_under(root) == before

    r = cli("data", "audit", str(root), "--arch", "mobilenet_v2", "--img-size", "64", "--quiet", "--out",
            str(tmp_path / "a2"), "--fix", "--quarantine", str(tmp_path / "q"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "undo with: transferlearn data check --undo" in r.stdout
    assert not any((root / p).exists() for p in planted["flips"])
    assert all((tmp_path / "q" / p).is_file() for p in planted["flips"])
    r = cli("data", "check", "--undo", str(tmp_path / "q"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert files_under(root) == before


@pytest.mark.parametrize("what", ["missing", "file", "fix"])
def test_cli_bad_input_is_one_line_error(tmp_path, what):
    args = {"missing": [str(tmp_path / "nope")],
            "file": [str(tmp_path / "photo.jpg")],
            "fix": [str(tmp_path), "--fix", "labels"]}[what]
    noisy(COLORS["red"], 0).save(tmp_path / "photo.jpg")
    r = cli("data", "audit", *args, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, r.stderr
    assert {"missing": "does not exist", "file": "photo.jpg", "fix": "--fix labels"}[what] in errors[0]
