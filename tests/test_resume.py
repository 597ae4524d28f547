"""Exact resume: a run killed at any moment (SIGKILL), stopped by Ctrl-C, or with a damaged last.pt
continues to the very tensors and results.csv rows of the run that was never stopped."""
from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from transferlearn import checkpoint as ckpt_io
from transferlearn.train import train
from transferlearn.train.resume import ResumeError

from conftest import make_dataset

# all-layers with dropout, augmentation, cosine schedule, BatchNorm: every source of state and randomness
OPTS = ["--mode", "all-layers", "--arch", "mobilenet_v2", "--img-size", "48", "--batch-size", "4", "--workers", "0",
        "--epochs", "3", "--quiet", "--amp", "off"]
API = dict(mode="all-layers", arch="mobilenet_v2", img_size=48, batch_size=4, workers=0, epochs=3, quiet=True,
           amp="off")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("resume_data"), n_train=6, n_val=2)


def env():
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli(*args):
    return [sys.executable, "-m", "transferlearn", "train", *args]


def rows(run: Path) -> list[dict]:
    with open(run / "results.csv", encoding="utf-8-sig") as f:
        return [{k: v for k, v in r.items() if k not in ("seconds", "time")} for r in csv.DictReader(f)]


def tensors(obj, prefix=""):
    """Every tensor in a nested checkpoint, by path (RNG states and timing aside)."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("rng", "versions"):
                yield from tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{prefix}/{i}")


def assert_same_final_state(a: Path, b: Path):
    ka, kb = torch.load(a / "last.pt", weights_only=True), torch.load(b / "last.pt", weights_only=True)
    ta, tb = dict(tensors(ka["model"])), dict(tensors(kb["model"]))
    oa, ob = dict(tensors(ka["train_state"]["optimizer"])), dict(tensors(kb["train_state"]["optimizer"]))
    assert ta.keys() == tb.keys() and oa.keys() == ob.keys() and len(ta) > 100
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    for k in oa:
        assert torch.equal(oa[k], ob[k]), k
    assert ka["train_state"]["scheduler"] == kb["train_state"]["scheduler"]
    assert rows(a) == rows(b)
    ba, bb = torch.load(a / "best.pt", weights_only=True), torch.load(b / "best.pt", weights_only=True)
    assert ba["epoch"] == bb["epoch"] and all(torch.equal(ba["model"][k], bb["model"][k]) for k in ba["model"])


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted run."""
    project = tmp_path_factory.mktemp("ref")
    subprocess.run(cli("--data", str(data), "--project", str(project), "--name", "ref", *OPTS), env=env(),
                   check=True, timeout=300)
    return project / "ref"


def kill_after_first_checkpoint(cmd, run: Path, delay: float, sig=signal.SIGKILL) -> subprocess.CompletedProcess:
    p = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    while not (run / "last.pt").exists():
        assert p.poll() is None, p.stdout.read()
        assert time.time() - t0 < 300
        time.sleep(0.01)
    time.sleep(delay)
    p.send_signal(sig)
    out, _ = p.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, p.returncode, out)


@pytest.mark.slow
@pytest.mark.parametrize("steps,seed", [("1", 0), ("1", 1), ("0", 2)], ids=["mid-epoch-a", "mid-epoch-b", "epoch-end"])
def test_sigkill_at_a_random_moment_then_resume_is_exact(data, reference, tmp_path, steps, seed):
    run = tmp_path / "x"
    cmd = cli("--data", str(data), "--project", str(tmp_path), "--name", "x", "--checkpoint-steps", steps, *OPTS)
    def position():  # last.pt exists from the first save on (the previous one is kept by a hard link)
        ck = torch.load(run / "last.pt", weights_only=True)
        return ck["epoch"], ck["train_state"]["progress"]["step"]

    for delay in (random.Random(seed).uniform(0, 0.8), 0.0):  # if training had ended before the kill, kill sooner
        r = kill_after_first_checkpoint(cmd, run, delay)
        if r.returncode == -signal.SIGKILL and position() != (3, 0):
            break
        shutil.rmtree(run)
    assert r.returncode == -signal.SIGKILL, r.stdout
    at = position()
    assert at != (3, 0), "killed after the end"
    r = subprocess.run(cli("--resume", str(run)), env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resumed after epoch {at[0]}" in r.stdout
    assert_same_final_state(reference, run)
    summary = (run / "summary.json").read_text()
    assert '"resumed": true' in summary


@pytest.mark.slow
def test_ctrl_c_saves_prints_resume_command_and_exits_130(data, reference, tmp_path):
    run = tmp_path / "c"
    r = kill_after_first_checkpoint(cli("--data", str(data), "--project", str(tmp_path), "--name", "c", *OPTS),
                                    run, 0.2, sig=signal.SIGINT)
    assert r.returncode == 130, r.stdout
    assert f"transferlearn train --resume {run}" in r.stdout
    ck = torch.load(run / "last.pt", weights_only=True)
    assert (ck["epoch"], ck["train_state"]["progress"]["step"]) != (3, 0)
    r = subprocess.run(cli("--resume", str(run)), env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same_final_state(reference, run)


@pytest.mark.slow
def test_corrupt_last_pt_falls_back_to_previous(data, reference, tmp_path):
    run = tmp_path / "k"
    r = kill_after_first_checkpoint(cli("--data", str(data), "--project", str(tmp_path), "--name", "k",
                                        "--checkpoint-steps", "1", *OPTS), run, 0.5)
    if not (run / "last.prev.pt").exists():
        pytest.skip("killed before a second checkpoint")  # pragma: no cover
    data_ = (run / "last.pt").read_bytes()
    # killed between the hard link and the rename of a save, last.pt and last.prev.pt are one inode: writing
    # last.pt in place would tear both. A torn write (a copy cut off, a non-atomic writer) is a new file.
    (run / "last.pt").unlink()
    (run / "last.pt").write_bytes(data_[: len(data_) // 2])  # torn write, as after a power cut
    assert torch.load(run / "last.prev.pt", weights_only=True)["format"] == ckpt_io.FORMAT
    r = subprocess.run(cli("--resume", str(run)), env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "truncated or not a PyTorch file" in r.stdout and "resuming from the previous checkpoint" in r.stdout
    assert_same_final_state(reference, run)  # same threads as the reference (subprocess): bit-identical


def test_crash_between_temp_write_and_replace_leaves_a_loadable_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt_io.save({"format": ckpt_io.FORMAT, "n": torch.arange(3)}, path, keep_previous=True)
    real = os.replace

    def crash(src, dst):  # the process dies after writing the temp file, before it replaces last.pt
        if Path(dst) == path:
            raise OSError("simulated crash")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        ckpt_io.save({"format": ckpt_io.FORMAT, "n": torch.arange(4)}, path, keep_previous=True)
    monkeypatch.setattr(os, "replace", real)
    # last.pt is the old, whole checkpoint (never missing), and so is last.prev.pt
    assert torch.equal(ckpt_io.read(path)["n"], torch.arange(3))
    assert torch.equal(ckpt_io.read(ckpt_io.previous_path(path))["n"], torch.arange(3))
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    ckpt_io.save({"format": ckpt_io.FORMAT, "n": torch.arange(5)}, path, keep_previous=True)
    assert torch.equal(ckpt_io.read(path)["n"], torch.arange(5))
    assert torch.equal(ckpt_io.read(ckpt_io.previous_path(path))["n"], torch.arange(3))


def test_resume_keeps_the_runs_options(data, tmp_path):
    s = train(data=str(data), project=str(tmp_path), name="r", **{**API, "epochs": 1})
    run = Path(s["run_dir"])
    with pytest.raises(ResumeError, match="--lr 0.5 differs"):
        train(resume=str(run), lr=0.5)
    with pytest.raises(ResumeError, match="--mode last-layer differs"):
        train(resume=str(run), mode="last-layer")
    with pytest.raises(ResumeError, match="may only raise"):
        train(resume=str(run), epochs=0)
    s2 = train(resume=str(run), epochs=2, quiet=True)  # raising --epochs continues the same run
    # epoch 0 is all-layers' head warm-up (the default)
    assert s2["run_dir"] == str(run) and [r["epoch"] for r in rows(run)] == ["0", "1", "2"]


def test_resume_errors_name_the_problem(data, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResumeError, match="has no last.pt"):
        train(resume=str(tmp_path / "empty"))
    with pytest.raises(ResumeError, match="no such run folder"):
        train(resume=str(tmp_path / "nope"))
    old = tmp_path / "old"
    old.mkdir()
    torch.save({"format": ckpt_io.FORMAT, "args": {}, "train_state": {"epoch": 1}}, old / "last.pt")
    with pytest.raises(ResumeError, match="older transferlearn"):
        train(resume=str(old))
    r = subprocess.run(cli("--resume", str(tmp_path / "empty")), env=env(), capture_output=True, text=True)
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


def test_resume_auto_starts_then_continues(data, tmp_path):
    a = train(data=str(data), project=str(tmp_path), name="auto", resume="auto", **{**API, "epochs": 1})
    assert a["run_dir"] == str(tmp_path / "auto") and not a["resumed"]
    b = train(data=str(data), project=str(tmp_path), name="auto", resume="auto", **{**API, "epochs": 2})
    assert b["resumed"] and b["run_dir"] == str(tmp_path / "auto")
    assert [r["epoch"] for r in rows(tmp_path / "auto")] == ["0", "1", "2"]  # 0: the head warm-up, done once
    with pytest.raises(ResumeError, match="--lr"):
        train(data=str(data), project=str(tmp_path), name="auto", resume="auto", **{**API, "epochs": 2, "lr": 0.1})


def test_resume_auto_continues_a_run_made_before_newer_options(data, tmp_path):
    """A checkpoint from an older transferlearn has no entry for options added since; --resume auto must take
    the values that reproduce it (config.LEGACY) instead of calling its options different."""
    then = {**API, "head_warmup": 0, "patience": 0}  # all-layers' defaults when those options did not exist
    train(data=str(data), project=str(tmp_path), name="old", **{**then, "epochs": 1})
    path = tmp_path / "old" / "last.pt"
    ck = ckpt_io.load(path)
    for k in ("freeze_stages", "layer_decay", "head_warmup", "warmup_views", "patience", "warmup_head"):
        del ck["args"][k]
    ck["options_hash"] = "from-an-older-version"
    torch.save(ck, path)
    # --warmup-head (now reset, then keep) cannot matter without a warm-up: it is not called a difference
    b = train(data=str(data), project=str(tmp_path), name="old", resume="auto", **{**then, "epochs": 2})
    assert b["resumed"] and [r["epoch"] for r in rows(tmp_path / "old")] == ["1", "2"]


def test_run_folders_claimed_atomically_and_locked(tmp_path):
    from transferlearn.runs import RunInUse, RunLock, claim_run_dir
    a, b = claim_run_dir(tmp_path, "exp"), claim_run_dir(tmp_path, "exp")
    assert (a.name, b.name) == ("exp", "exp2")
    lock = RunLock(a).acquire()
    # a second process on the same folder is refused while the first holds it
    code = ("import sys; from transferlearn.runs import RunLock, RunInUse\n"
            f"try:\n    RunLock({str(a)!r}).acquire()\nexcept RunInUse as e:\n    print(e); sys.exit(3)")
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True)
    assert r.returncode == 3 and f"pid {os.getpid()}" in r.stdout
    lock.release()
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True)
    assert r.returncode == 0
    held = RunLock(a).acquire()
    with pytest.raises(RunInUse):  # a second trainer in this process, too
        RunLock(a).acquire()
    held.release()


def test_state_round_trip():
    from transferlearn.train.state import create_state, rng_state, set_rng_state
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.head = torch.nn.Linear(4, 3), torch.nn.Identity()

        def forward(self, x):
            return self.head(self.backbone(x))

    m = Net()
    s = create_state(m, "all-layers", "adamw", 1e-2, 0.9, 1e-4, "cosine", 5, 7, 0.1)
    for _ in range(2):
        m(torch.randn(2, 4)).sum().backward()
        s.optimizer.step()
        s.scheduler.step()
    s.epoch, s.progress, s.history = 2, {"step": 1, "loss_sum": 0.5, "correct": 1, "n": 2, "seconds": 0.1}, [{"e": 1}]
    sd = s.state_dict()
    r = rng_state()
    a = torch.rand(3)
    set_rng_state(r)
    assert torch.equal(torch.rand(3), a)
    s2 = create_state(m, "all-layers", "adamw", 1e-2, 0.9, 1e-4, "cosine", 5, 7, 0.1)
    s2.load_state_dict(sd)
    assert s2.state_dict()["optimizer"]["state"][0]["exp_avg"].equal(sd["optimizer"]["state"][0]["exp_avg"])
    assert (s2.epoch, s2.progress, s2.history, s2.scheduler.last_epoch) == (2, sd["progress"], [{"e": 1}], 2)


@pytest.mark.slow
def test_killed_compare_continues_with_the_mode_it_was_in(data, tmp_path):
    cmd = [sys.executable, "-m", "transferlearn", "compare", "--data", str(data), "--modes", "last-layer",
           "all-layers", "--project", str(tmp_path), "--name", "cmp", "--checkpoint-steps", "1",
           *[o for o in OPTS if o not in ("--mode", "all-layers")]]
    r = kill_after_first_checkpoint(cmd, tmp_path / "cmp" / "all-layers", 0.3)
    assert r.returncode == -signal.SIGKILL, r.stdout
    first = (tmp_path / "cmp" / "last-layer" / "best.pt").stat().st_mtime_ns
    r = subprocess.run([sys.executable, "-m", "transferlearn", "compare", "--resume", str(tmp_path / "cmp")],
                       env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "last-layer finished earlier" in r.stdout and "resumed after epoch" in r.stdout
    assert (tmp_path / "cmp" / "last-layer" / "best.pt").stat().st_mtime_ns == first  # not trained again
    with open(tmp_path / "cmp" / "comparison.csv", encoding="utf-8-sig") as f:
        assert [row["mode"] for row in csv.DictReader(f)] == ["last-layer", "all-layers"]
    assert [x["epoch"] for x in rows(tmp_path / "cmp" / "all-layers")] == ["0", "1", "2", "3"]  # 0: the warm-up
    r = subprocess.run(cli("--resume", str(tmp_path / "cmp")), env=env(), capture_output=True, text=True)
    assert r.returncode == 2 and "is a compare run" in r.stderr


def test_trainings_started_at_once_never_share_a_folder(tmp_path):
    """Eight processes claim runs/exp at the same moment: eight different folders."""
    code = ("import sys, time; from transferlearn.runs import claim_run_dir\n"
            "t = float(sys.argv[1])\nwhile time.time() < t: pass\n"
            f"print(claim_run_dir({str(tmp_path)!r}, 'exp'))")
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start)], env=env(), stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    folders = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert len(set(folders)) == 8 and all(Path(f).is_dir() for f in folders), folders
