"""Every command as a user runs it: the installed `transferlearn` console script in a subprocess, on a tiny
dataset with a Chinese class name. Each command is asserted to exit 0 and leave the files or lines a user looks
for; each gets a bad input too, which must end in one `error:` line and a non-zero exit, with no traceback.

`data check` once crashed on every dataset while hundreds of in-process tests passed: only the command as a
user types it catches what the package's import wiring does. One tiny trained run is shared by the module.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_CLASSES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "transferlearn"
FAST = ["--arch", "mobilenet_v2", "--img-size", "64", "--batch-size", "8", "--workers", "0"]


def env() -> dict:
    # the tree under test, whatever the environment has installed; one thread: a tiny model on a busy CPU
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONIOENCODING="utf-8")


def tl(*args, ok=True, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """Run `transferlearn ARGS`; with ok=True assert it succeeded, else that it failed as a user should see."""
    assert SCRIPT.exists(), f"no console script at {SCRIPT}: install the package (bash scripts/setup.sh)"
    r = subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env(), cwd=cwd,
                       timeout=timeout)
    if ok:
        assert r.returncode == 0, f"transferlearn {' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr[-3000:]}"
    else:
        assert r.returncode != 0, f"transferlearn {' '.join(map(str, args))} should have failed:\n{r.stdout[-2000:]}"
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:") or ": error: " in line]
        assert len(errors) == 1, f"expected one error line, got:\n{r.stderr[-3000:]}"
    return r


def one_error(r) -> str:
    return next(line for line in r.stderr.splitlines() if line.startswith("error:") or ": error: " in line)


@pytest.fixture(scope="module")
def data(tiny_data):
    return tiny_data


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """`transferlearn train` as the user types it: the run folder every later command uses."""
    project = tmp_path_factory.mktemp("e2e_runs")
    r = tl("train", "--data", data, "--mode", "last-layer", "--epochs", "2", *FAST, "--project", project,
           "--name", "run")
    d = project / "run"
    assert f"{d}" in r.stdout + r.stderr
    return d


@pytest.fixture(scope="module")
def image(data) -> Path:
    return next((data / "val" / TINY_CLASSES[2]).iterdir())


def test_version_and_help():
    r = tl("--version")
    assert r.stdout.startswith("transferlearn ")
    assert "train" in tl("--help").stdout
    m = subprocess.run([sys.executable, "-m", "transferlearn", "--version"], capture_output=True, text=True,
                       env=env(), timeout=120)
    assert m.returncode == 0 and m.stdout == r.stdout


def test_train(run):
    for f in ("best.pt", "last.pt", "results.csv", "args.yaml", "classes.json", "summary.json", "curves.png",
              "report.html"):
        assert (run / f).is_file(), f
    assert json.loads((run / "classes.json").read_text(encoding="utf-8")) == sorted(TINY_CLASSES) or \
        set(json.loads((run / "classes.json").read_text(encoding="utf-8"))) == set(TINY_CLASSES)
    s = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert 0 <= s["best_val_acc"] <= 1
    assert list(run.glob("events.out.tfevents.*"))
    assert len((run / "results.csv").read_text(encoding="utf-8").strip().splitlines()) >= 3  # header + 2 epochs


def test_train_bad_input(tmp_path):
    r = tl("train", "--data", tmp_path / "no_such_folder", *FAST, "--project", tmp_path, ok=False)
    assert "no_such_folder" in one_error(r)
    assert not list(tmp_path.glob("*/best.pt"))


def test_train_resume_of_a_finished_run(run):
    r = tl("train", "--resume", run, "--epochs", "3")
    assert len((run / "results.csv").read_text(encoding="utf-8").strip().splitlines()) >= 4, r.stdout[-2000:]


def test_compare(data, tmp_path):
    r = tl("compare", "--data", data, "--modes", "last-layer", "scratch", "--epochs", "1", *FAST,
           "--project", tmp_path, "--name", "cmp")
    d = tmp_path / "cmp"
    for f in ("comparison.csv", "comparison.png", "report.html", "last-layer/best.pt", "scratch/best.pt"):
        assert (d / f).is_file(), f
    assert "last-layer" in r.stdout and "scratch" in r.stdout


def test_compare_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    tl("compare", "--data", tmp_path / "empty", "--epochs", "1", *FAST, "--project", tmp_path, ok=False)


def test_eval(run, data, tmp_path):
    out = tmp_path / "eval"
    r = tl("eval", run, "--data", data, "--out", out, "--embed", "none", "--workers", "0")
    for f in ("metrics.json", "predictions.csv", "confusion_matrix.png", "per_class.png"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert 0 <= m["accuracy"] <= 1 and "accuracy" in r.stdout.lower()
    assert TINY_CLASSES[2] in (out / "predictions.csv").read_text(encoding="utf-8-sig")


def test_eval_bad_input(tmp_path, data):
    r = tl("eval", tmp_path / "no_run", "--data", data, ok=False)
    assert "no_run" in one_error(r)


def test_predict(run, data, tmp_path):
    csv = tmp_path / "preds.csv"
    r = tl("predict", run, data / "val", "--csv", csv, "--topk", "2")
    rows = csv.read_text(encoding="utf-8-sig").strip().splitlines()
    assert len(rows) == 1 + 3 * len(TINY_CLASSES), rows[:3]
    assert any(c in r.stdout for c in TINY_CLASSES)


def test_predict_bad_input(run, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    r = tl("predict", run, tmp_path / "notes.txt", ok=False)
    assert "notes.txt" in r.stderr


def test_explain(run, image, tmp_path):
    r = tl("explain", run, image, "--output", tmp_path / "cams")
    pngs = list((tmp_path / "cams").glob("*.png"))
    assert len(pngs) == 1 and "heat-map" in r.stdout


def test_explain_bad_input(run, image):
    r = tl("explain", run, image, "--target-class", "no-such-class", ok=False)
    assert "no-such-class" in one_error(r)


def test_export_onnx(run, tmp_path):
    out = tmp_path / "m.onnx"
    r = tl("export", run, "--format", "onnx", "--output", out)
    assert out.is_file() and out.stat().st_size > 100_000
    assert "onnx" in r.stdout.lower()


def test_export_bad_input(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_text("this is not a checkpoint")
    r = tl("export", bad, "--format", "onnx", ok=False)
    assert "model.pt" in one_error(r)


def test_convert_there_and_back(tmp_path):
    import torch
    import torchvision
    src = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), src)
    tl("convert", src, tmp_path / "r18.ckpt")
    r = tl("convert", tmp_path / "r18.ckpt", tmp_path / "back.pt")
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert torch.equal(back["conv1.weight"], torch.load(src, weights_only=True)["conv1.weight"])
    assert "resnet18" in r.stdout


def test_convert_bad_input(tmp_path):
    (tmp_path / "x.txt").write_text("nope")
    tl("convert", tmp_path / "x.txt", tmp_path / "y.pt", ok=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve(run, image):
    port = free_port()
    p = subprocess.Popen([str(SCRIPT), "serve", str(run), "--port", str(port)], env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                assert p.poll() is None and time.time() < deadline, p.stdout.read() if p.poll() is not None else "timeout"
                time.sleep(0.5)
        assert "<html" in page.lower()
        boundary = "e2eboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{image.name}\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + image.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            answer = json.loads(urllib.request.urlopen(req, timeout=60).read().decode())
        except urllib.error.HTTPError as e:
            p.terminate()
            pytest.fail(f"POST /predict: {e} {e.read()[:500]!r}\nserver:\n{p.communicate(timeout=30)[0][-3000:]}")
        assert any(c in json.dumps(answer, ensure_ascii=False) for c in TINY_CLASSES), answer
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_serve_bad_input(tmp_path):
    r = tl("serve", tmp_path / "no_run", "--port", str(free_port()), ok=False)
    assert "no_run" in one_error(r)


def test_visualize_batch_and_predictions(run, data, tmp_path):
    tl("visualize", "batch", "--data", data, "--n", "6", "--img-size", "64", "--arch", "mobilenet_v2",
       "--out", tmp_path / "batch.png")
    assert (tmp_path / "batch.png").is_file()
    tl("visualize", "predictions", run, "--data", data, "--n", "6", "--out", tmp_path / "preds.png")
    assert (tmp_path / "preds.png").is_file()


def test_visualize_bad_input(tmp_path):
    r = tl("visualize", "batch", "--data", tmp_path / "nothing", "--out", tmp_path / "b.png", ok=False)
    assert "nothing" in one_error(r)


def test_models():
    r = tl("models", "lenet")
    assert "lenet" in r.stdout
    assert "resnet18" in tl("models").stdout


def test_models_bad_input():
    r = tl("models", "no-such-arch-anywhere", ok=False)
    assert "no-such-arch-anywhere" in one_error(r)


def copy_tree(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_data_check_fix_undo(data, tmp_path):
    clean = tl("data", "check", data, "--quiet")
    assert "clean" in clean.stdout and TINY_CLASSES[2] in clean.stdout
    d = copy_tree(data, tmp_path / "mine")
    bad = d / "train" / TINY_CLASSES[0] / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    r = subprocess.run([str(SCRIPT), "data", "check", str(d), "--quiet"], capture_output=True, text=True, env=env(),
                       timeout=300)
    assert r.returncode == 1 and "broken.jpg" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    q = tmp_path / "quarantine"
    tl("data", "check", d, "--quiet", "--fix", "--quarantine", q)
    assert not bad.exists() and list(q.rglob("broken.jpg"))
    tl("data", "check", "--undo", q)
    assert bad.exists()


def test_data_check_bad_input(tmp_path):
    r = tl("data", "check", tmp_path / "missing", ok=False)
    assert "missing" in one_error(r)


def test_data_split_and_stats(tmp_path):
    src = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c in TINY_CLASSES:
        (src / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(src / c / f"{i}.jpg")
    r = tl("data", "split", src, tmp_path / "split", "--val", "0.2", "--quiet")
    assert "train on it with" in r.stdout
    for c in TINY_CLASSES:
        assert len(list((tmp_path / "split" / "val" / c).iterdir())) == 2
    s = tl("data", "stats", tmp_path / "split", "--out", tmp_path / "stats")
    assert TINY_CLASSES[2] in s.stdout and list((tmp_path / "stats").glob("*.png"))


def test_data_split_bad_input(tmp_path):
    r = tl("data", "split", tmp_path / "nope", tmp_path / "out", ok=False)
    assert "nope" in one_error(r)


def test_data_stats_bad_input(tmp_path):
    (tmp_path / "f.jpg").write_text("x")
    tl("data", "stats", tmp_path / "f.jpg", ok=False)


def idx_files(folder: Path, n=30) -> Path:
    """MNIST's four idx files with n synthetic digits each (the format `data get mnist --from` reads)."""
    import gzip
    import struct
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())
    return folder


def test_data_get_from_a_local_copy(tmp_path):
    src = idx_files(tmp_path / "mnist_files")
    r = tl("data", "get", "mnist", tmp_path / "d", "--from", src, "--no-verify", "--quiet")
    out = tmp_path / "d" / "mnist"
    assert "train on it with" in r.stdout
    assert len(list((out / "train").iterdir())) == 10 and len(list(out.rglob("*.png"))) == 60


def test_data_get_bad_input(tmp_path):
    r = tl("data", "get", "mnist", tmp_path / "d", "--from", tmp_path / "not_here", ok=False)
    assert "not_here" in one_error(r)


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"{FASHION} absent (Debian's dataset-fashion-mnist; setup.sh "
                                                  "installs it as root)")
def test_demo(tmp_path):
    r = tl("demo", "--epochs", "1", "--train-images", "60", "--val-images", "30", "--img-size", "32",
           "--arch", "mobilenet_v2", "--project", tmp_path, "--quiet")
    assert list(tmp_path.rglob("comparison.csv")) and list(tmp_path.rglob("comparison.png"))
    assert "scratch" in r.stdout


def test_demo_bad_input(tmp_path):
    tl("demo", "--epochs", "0", "--project", tmp_path, ok=False)


def test_info():
    r = tl("info")
    for key in ("transferlearn", "torch", "capability", "AMX", "cache"):
        assert key.lower() in r.stdout.lower(), key
    j = json.loads(tl("info", "--json").stdout)
    assert j and "torch" in json.dumps(j)


def test_info_bad_input(tmp_path):
    cache = tmp_path / "cache_is_a_file"
    cache.write_text("x")
    r = subprocess.run([str(SCRIPT), "info", "--no-torch"], capture_output=True, text=True,
                       env={**env(), "TRANSFERLEARN_CACHE": str(cache)}, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "cache_is_a_file" in r.stderr, r.stderr
