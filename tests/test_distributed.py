"""DDP under torchrun on the CPU (gloo, 2 processes, synthetic images): one run folder, one model on every
rank, validation that counts each image once, last-layer equal to one process with the global batch, and a
worker killed under --max-restarts that the run survives."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from transferlearn.data import find_splits
from transferlearn.train import TrainConfig
from transferlearn.train.distributed import DistContext
from transferlearn.train.loop import validate
from transferlearn.train.pipeline import image_batches, image_datasets

from conftest import make_dataset

pytestmark = [pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built"),
              pytest.mark.slow]
TESTS = Path(__file__).resolve().parent
BASE = dict(arch="mobilenet_v2", img_size=48, batch_size=4, workers=0, quiet=True, amp="off")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ddp_data"), n_train=8, n_val=3)  # 24 train, 9 val (odd: no padding)


def env():
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = str(TESTS.parent) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def torchrun(*args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]


def run_worker(cfg: dict, out: Path, nproc=2):
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(torchrun(str(TESTS / "ddp_worker.py"), json.dumps(cfg), str(out), nproc=nproc), env=env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def results(run: Path) -> list[dict]:
    with open(run / "results.csv", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("extra", [{}, {"head_warmup": 2, "warmup_head": "keep", "ema": 1.0}], ids=["plain", "ema"])
def test_two_processes_one_folder_one_model_exact_validation(data, tmp_path, extra):
    """With --ema too: the average's BatchNorm buffers follow each process's statistics and are synced each epoch."""
    cfg = dict(BASE, data=str(data), mode="all-layers", epochs=2, project=str(tmp_path / "runs"), name="d", **extra)
    r = run_worker(cfg, tmp_path)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["d"]  # the folder was chosen once
    assert "2 processes (gloo), batch 4 per process = 8 global" in r.stdout
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a), "ranks ended with different weights or BN statistics"
    ck = torch.load(tmp_path / "runs" / "d" / "last.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in ck["model"]) and ck["world_size"] == 2
    assert all(torch.equal(ck["model"][k], a[k]) for k in a)

    # validation under DDP = one process evaluating the same weights over every val image once
    from transferlearn.checkpoint import load_model
    model, ck = load_model(tmp_path / "runs" / "d" / "last.pt")
    one = DistContext()
    c = TrainConfig(**ck["args"])
    train, val = image_datasets(find_splits(c.data), ck["preprocess"], c, one)
    _, vb = image_batches(train, val, c, one, 3)
    m = validate(model, vb, torch.nn.CrossEntropyLoss(), torch.device("cpu"))
    last = results(tmp_path / "runs" / "d")[-1]
    assert m["val_images"] == 9
    assert float(last["val_acc"]) == pytest.approx(m["val_acc"], abs=1e-9)
    assert float(last["val_loss"]) == pytest.approx(m["val_loss"], rel=1e-5)


def test_last_layer_ddp_matches_one_process_with_the_global_batch(data, tmp_path):
    # resnet18 (random frozen backbone; its head has no dropout): with a dropout head (mobilenet_v2, lite0) each
    # process draws its own masks for its share of the batch, so DDP and one process agree only in distribution
    cfg = dict(BASE, data=str(data), mode="last-layer", epochs=2, aug_views=2, arch="resnet18", weights="none")
    run_worker(dict(cfg, project=str(tmp_path / "ddp")), tmp_path / "ddp")
    run_worker(dict(cfg, batch_size=8, project=str(tmp_path / "one")), tmp_path / "one", nproc=1)
    a = torch.load(tmp_path / "ddp" / "rank0.pt")
    b = torch.load(tmp_path / "one" / "rank0.pt")
    for k in a:
        # the features are the same samples and augmentations; only the backbone's batch composition differs
        # (4 vs 8 images per forward), which changes float rounding, not the result
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    ra, rb = results(tmp_path / "ddp" / "last-layer"), results(tmp_path / "one" / "last-layer")
    assert [r["val_acc"] for r in ra] == [r["val_acc"] for r in rb]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc")
def test_killed_worker_is_restarted_and_the_run_goes_on(data, tmp_path):
    args = ["-m", "transferlearn", "train", "--data", str(data), "--mode", "all-layers", "--arch", "mobilenet_v2",
            "--img-size", "48", "--batch-size", "4", "--workers", "0", "--epochs", "3", "--quiet", "--amp", "off",
            "--checkpoint-steps", "1", "--project", str(tmp_path), "--name", "x", "--resume", "auto"]
    p = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "--max-restarts=3", *args], env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    t0 = time.time()
    while not (tmp_path / "x" / "last.pt").exists():
        assert p.poll() is None and time.time() - t0 < 300
        time.sleep(0.02)
    workers = _children(p.pid)
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out[-4000:]
    assert "resumed after epoch" in out
    assert [r["epoch"] for r in results(tmp_path / "x")] == ["0", "1", "2", "3"]  # 0: the head warm-up
    assert json.loads((tmp_path / "x" / "summary.json").read_text())["resumed"] is True

    # the same weights as a run that was never interrupted
    ref = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          *[a if a != "x" else "ref" for a in args]], env=env(), capture_output=True, text=True,
                         timeout=300)
    assert ref.returncode == 0, ref.stdout[-3000:]
    a = torch.load(tmp_path / "x" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "time")} for r in rows]  # noqa: E731
    assert strip(results(tmp_path / "x")) == strip(results(tmp_path / "ref"))  # every rank's sums restored
