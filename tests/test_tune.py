"""lr-find and tune on tiny synthetic data: the range test's suggestion and that it leaves everything as it was;
a search's files, its resume, a crashing trial, bad spaces; the CLI end to end."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from conftest import FAST

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(FAST)  # mobilenet_v2 at 64 px, offline weights


def cli(*args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([str(Path(sys.executable).parent / "transferlearn"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def files_of(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# ---------------------------------------------------------------- lr-find

class Net(nn.Module):
    """The shape modes.py expects (backbone + head), small enough to run 100 steps in milliseconds."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.backbone(x))


class Batches:
    def __init__(self, n=4):
        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(8, 12, generator=g), torch.randint(3, (8,), generator=g)) for _ in range(n)]
        self.epochs = []

    def set_epoch(self, epoch, step=0):
        self.epochs.append(epoch)

    def __iter__(self):
        return iter(self.data)


def test_range_test_restores_the_weights_and_rngs_and_stops_when_the_loss_diverges():
    from transferlearn.train.lr_find import range_test
    from transferlearn.train.state import create_state
    torch.manual_seed(1)
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = create_state(model, "all-layers", "sgd", 1e-7, 0.9, 0.0, "none", 1, 7, 0.1)
    rng = torch.get_rng_state()
    batches = Batches()
    found = range_test(model, model, batches, nn.CrossEntropyLoss(), state, torch.device("cpu"), "off",
                       start_lr=1e-5, end_lr=100.0, steps=100)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert found.stopped == "diverged" and len(found.lrs) < 100  # SGD at lr 100 does not survive
    assert len(batches.epochs) > 1  # 4 batches an epoch: the test went on into more epochs
    assert all(a < b for a, b in zip(found.lrs, found.lrs[1:]))  # exponential, rising
    assert 1e-5 <= found.steep <= 100 and 1e-6 <= found.suggested <= 10
    assert found.suggested == pytest.approx(found.minimum / 10)
    i = found.lrs.index(found.minimum)
    assert found.losses[i] == min(found.losses[len(found.lrs) // 10:max(len(found.lrs) - 5, 2)])


def test_suggestions_find_the_steepest_fall_and_the_minimum():
    import numpy as np

    from transferlearn.train.lr_find import suggestions
    lrs = list(np.logspace(-6, 0, 60))
    # flat, then a fall steepest at 1e-3, the minimum at 1e-2, then a rise
    losses = [2.0 - 1.0 / (1 + np.exp(-(np.log10(lr) + 3) * 4)) + (max(0, np.log10(lr) + 2)) ** 2 for lr in lrs]
    steep, minimum = suggestions(lrs, losses)
    assert 5e-4 < steep < 2e-3
    assert 5e-3 < minimum < 3e-2


def test_lr_find_suggests_an_lr_and_leaves_the_data_and_folders_untouched(dataset, tmp_path, monkeypatch,
                                                                         one_torch_thread):
    from transferlearn.train import TrainConfig
    from transferlearn.train.lr_find import lr_find
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    data_before = files_of(dataset)
    found = lr_find(TrainConfig(data=str(dataset), mode="last-layer", **TINY), steps=40, plot=work / "lr.png",
                    log=lambda m: None)
    assert 1e-7 <= found.suggested <= 1 and 1e-7 <= found.steep <= 1
    assert 10 <= len(found.lrs) <= 40
    assert files_of(dataset) == data_before
    assert sorted(p.name for p in work.iterdir()) == ["lr.png"]  # no run folder, no checkpoint


def test_lr_find_cli_and_train_lr_find(dataset, tmp_path):
    tmp_path = tmp_path / "work"  # the data are beside it
    tmp_path.mkdir()
    r = cli("lr-find", "--data", str(dataset), "--arch", "mobilenet_v2", "--img-size", "64", "--batch-size", "8",
            "--workers", "0", "--steps", "40", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "suggested lr" in r.stdout and (tmp_path / "lr_find.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr_find.png"]
    r = cli("train", "--data", str(dataset), "--arch", "mobilenet_v2", "--img-size", "64", "--batch-size", "8",
            "--workers", "0", "--epochs", "1", "--lr", "find", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "last-layer"
    args = yaml.safe_load((run / "args.yaml").read_text(encoding="utf-8"))
    assert (run / "lr_find.png").is_file() and (run / "best.pt").is_file()
    suggested = float(r.stdout.split("lr finder: suggested lr ")[1].split()[0])
    assert args["lr"] == pytest.approx(suggested, rel=1e-2) and 1e-7 <= args["lr"] <= 1  # printed with 3 digits
    assert "frozen features: computed earlier in this process, reused" in r.stdout


def test_lr_find_bad_input_is_one_line(tmp_path):
    r = cli("lr-find", "--data", str(tmp_path / "missing"), cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[0].startswith("error: ") and "missing" in r.stderr


def test_public_api_has_lr_find_and_tune():
    import transferlearn
    from transferlearn.train.lr_find import lr_find
    from transferlearn.tuning.search import tune
    assert transferlearn.lr_find is lr_find and transferlearn.tune is tune


def test_an_lr_that_is_not_a_number_is_refused():
    from transferlearn.train import TrainConfig
    with pytest.raises(ValueError, match="give a number"):
        TrainConfig(data="x", lr="fast").resolved()


# ---------------------------------------------------------------- the search space

def test_default_space_and_changes():
    from transferlearn.train.config import config_fields
    from transferlearn.tuning.space import build_space
    s = build_space("all-layers", 224, False, {"epochs": 4, "augment": ["standard"], "head_warmup": None},
                    fields=config_fields())
    assert s["epochs"].kind == "fixed" and s["epochs"].value == 4
    assert s["augment"].choices == ("standard",) and "head_warmup" not in s
    assert s["train_size"].choices == (128, 160, 224)
    assert s["lr"].kind == "float" and s["lr"].log
    s = build_space("last-layer", 224, False, {"lr": {"low": "1e-4", "high": "1e-2", "log": True},
                                                "epochs": {"low": 2, "high": 8, "step": 2}}, fields=config_fields())
    assert (s["lr"].low, s["lr"].high) == (1e-4, 1e-2)  # PyYAML's strings for 1e-4 are read as numbers
    assert s["epochs"].kind == "int" and s["epochs"].step == 2
    assert "train_size" not in build_space("all-layers", 28, True, fields=config_fields())


@pytest.mark.parametrize("changes, message", [
    ({"lrr": {"low": 1e-4, "high": 1e-2}}, "unknown key(s) lrr"),
    ({"lr": {"low": 1e-2, "high": 1e-4}}, "empty range"),
    ({"lr": {"low": 0.0, "high": 1e-2, "log": True}}, "log range needs low > 0"),
    ({"augment": []}, "empty list of choices"),
    ({"lr": {"low": 1e-4}}, "a range is {low: A, high: B}"),
    ({"lr": {"low": "small", "high": 1e-2}}, "is not a number"),
    ({"data": "elsewhere"}, "cannot be searched"),
])
def test_bad_space_is_refused_with_the_key(changes, message):
    from transferlearn.errors import OptionsFileError
    from transferlearn.train.config import config_fields
    from transferlearn.tuning.space import build_space
    with pytest.raises(OptionsFileError) as e:
        build_space("last-layer", 224, False, changes, source="--space s.yaml", fields=config_fields())
    assert message in str(e.value) and str(e.value).startswith("--space s.yaml") and "\n" not in str(e.value)


def test_a_choice_that_cannot_run_is_refused_before_the_search(dataset, tmp_path):
    from transferlearn.errors import OptionsFileError
    from transferlearn.tuning import tune
    with pytest.raises(OptionsFileError, match="head_warmup: 5 does not make a valid run"):
        tune(data=str(dataset), mode="last-layer", project=str(tmp_path), space={"head_warmup": [0, 5]}, **TINY)
    assert not (tmp_path / "tune").exists()  # refused before a folder was made


# ---------------------------------------------------------------- the search

SMALL_SPACE = {"epochs": 2, "augment": ["standard"]}  # trial 0 is then the defaults but for epochs


def search(dataset, project, trials, **kw):
    from transferlearn.tuning import tune
    lines = []
    out = tune(data=str(dataset), mode=kw.pop("mode", "last-layer"), project=str(project), trials=trials,
               space=kw.pop("space", SMALL_SPACE), log=lines.append, **{**TINY, **kw})
    return out, "\n".join(lines)


def test_tune_writes_csv_plot_and_args_that_train_cfg_replays(dataset, tmp_path, one_torch_thread):
    out, text = search(dataset, tmp_path, 3)
    folder = tmp_path / "tune"
    rows = (folder / "tune.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rows[0].startswith("trial,state,value") and len(rows) == 4
    assert (folder / "tune.png").stat().st_size > 1000 and (folder / "tune.db").is_file()
    assert [t["state"] for t in out["trials"]] == ["complete"] * 3
    assert out["trials"][0]["defaults"] and out["trials"][0]["lr"] == pytest.approx(1e-3)  # trial 0: the defaults
    assert "selected on the val split" in text and "defaults (trial 0)" in text
    assert yaml.safe_load((folder / "tune.yaml").read_text(encoding="utf-8"))["pruner"] == "none"  # auto: seconds a trial
    best = out["trials"][out["best_trial"]]
    args = yaml.safe_load((folder / "args.yaml").read_text(encoding="utf-8"))
    assert args["lr"] == pytest.approx(best["lr"]) and args["epochs"] == 2  # fixed by the space
    assert "project" not in args and "quiet" not in args
    kept = sorted(p.parent.name for p in (folder / "trials").glob("*/best.pt"))
    assert kept == sorted({f"trial-{out['best_trial']:03d}", "trial-000"})  # the best and the defaults only
    r = cli("train", "--cfg", str(folder / "args.yaml"), "--project", str(tmp_path / "replay"), "--quiet",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    replayed = yaml.safe_load((tmp_path / "replay" / "last-layer" / "args.yaml").read_text(encoding="utf-8"))
    assert replayed["lr"] == pytest.approx(best["lr"]) and replayed["epochs"] == 2
    summary = yaml.safe_load((tmp_path / "replay" / "last-layer" / "summary.json").read_text(encoding="utf-8"))
    assert summary["best_val_acc"] == pytest.approx(best["value"], abs=1e-6)  # same options and seed, same result


def test_all_layers_trials_share_the_head_warmups_features_across_training_crops(dataset, tmp_path, one_torch_thread):
    out, _ = search(dataset, tmp_path, 3, mode="all-layers", space={"epochs": 1, "head_warmup": [2],
                                                                   "train_size": [40, 48, 56, 64], "augment": ["standard"]})
    sizes = [t["train_size"] for t in out["trials"]]
    assert [t["state"] for t in out["trials"]] == ["complete"] * 3 and len(set(sizes)) > 1, sizes  # seeded draws
    logs = [(Path(t["run_dir"]) / "train.log").read_text(encoding="utf-8") for t in out["trials"]]
    assert "frozen features: 2 views" in logs[0]
    assert all("frozen features: computed earlier in this process, reused" in log for log in logs[1:])


def test_tune_resumes_without_redoing_finished_trials(dataset, tmp_path, one_torch_thread):
    out, _ = search(dataset, tmp_path, 2)
    folder = tmp_path / "tune"
    first = {t["trial"]: (t["lr"], t["value"]) for t in out["trials"]}
    mtimes = {p.name: p.stat().st_mtime_ns for p in (folder / "trials").glob("*/results.csv")}
    from transferlearn.tuning import tune
    lines = []
    out = tune(resume=str(folder), trials=4, log=lines.append)
    assert "2 finished trials kept; 2 to run" in lines[0]
    assert [t["trial"] for t in out["trials"]] == [0, 1, 2, 3]
    assert {t["trial"]: (t["lr"], t["value"]) for t in out["trials"][:2]} == first
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "trials").glob("*/results.csv")
            if p.parent.name in ("trial-000", "trial-001")} == mtimes
    out = tune(resume=str(folder), trials=4, log=lines.append)  # nothing left to do
    assert len(out["trials"]) == 4


def test_an_interrupted_search_keeps_its_trials_and_retries_the_stopped_one(dataset, tmp_path, monkeypatch,
                                                                            one_torch_thread):
    from transferlearn.train import trainer
    real_fit = trainer.Trainer.fit

    def fit(self):
        if self.cfg.name == "trial-001":
            raise KeyboardInterrupt  # Ctrl-C during the second trial
        return real_fit(self)

    monkeypatch.setattr(trainer.Trainer, "fit", fit)
    out, text = search(dataset, tmp_path, 3)
    assert out["stopped"] and "transferlearn tune --resume" in text
    assert [t["state"] for t in out["trials"]] == ["complete", "stopped"]
    monkeypatch.setattr(trainer.Trainer, "fit", real_fit)
    from transferlearn.tuning import tune
    out = tune(resume=str(tmp_path / "tune"), log=lambda m: None)
    states = [t["state"] for t in out["trials"]]
    assert states == ["complete", "stopped", "complete", "complete"]  # 3 finished, as asked when it started
    assert out["trials"][2]["lr"] == out["trials"][1]["lr"]  # the stopped trial's values, tried again


def test_a_crashing_trial_is_named_and_the_search_goes_on(dataset, tmp_path, monkeypatch, one_torch_thread):
    from transferlearn.train import trainer
    real_fit = trainer.Trainer.fit

    def fit(self):
        if self.cfg.name == "trial-001":
            raise RuntimeError("out of memory in trial one")
        return real_fit(self)

    monkeypatch.setattr(trainer.Trainer, "fit", fit)
    out, text = search(dataset, tmp_path, 3)
    assert "trial 1 failed: RuntimeError: out of memory in trial one" in text
    assert [t["state"] for t in out["trials"]] == ["complete", "fail", "complete"]
    csv = (tmp_path / "tune" / "tune.csv").read_text(encoding="utf-8-sig")
    assert "RuntimeError: out of memory in trial one" in csv


def test_every_trial_failing_is_one_error(dataset, tmp_path, monkeypatch):
    from transferlearn.errors import TuneError
    from transferlearn.train import trainer

    def fit(self):
        raise RuntimeError("broken")

    monkeypatch.setattr(trainer.Trainer, "fit", fit)
    with pytest.raises(TuneError, match="no trial of .* finished; the first: trial 0: RuntimeError: broken"):
        search(dataset, tmp_path, 2)


def test_split_test_reports_the_best_and_the_defaults_on_unseen_data(dataset, tmp_path, one_torch_thread):
    import shutil

    from transferlearn.errors import TuneError
    with pytest.raises(TuneError, match="has no test/ folder"):
        search(dataset, tmp_path, 2, split="test")
    shutil.copytree(dataset / "val", dataset / "test")
    out, text = search(dataset, tmp_path, 2, split="test")
    assert 0 <= out["test_acc"]["best"] <= 1 and 0 <= out["test_acc"]["defaults"] <= 1
    assert "on the test split (unseen by the search): best" in text
    assert (Path(out["dir"]) / "test" / "trial-000").is_dir()


# ---------------------------------------------------------------- CLI

def test_tune_cli_end_to_end(dataset, tmp_path):
    (tmp_path / "space.yaml").write_text("epochs: {low: 1, high: 2}\naugment: [standard]\nweight_decay: null\n",
                                         encoding="utf-8")
    r = cli("tune", "--data", str(dataset), "--arch", "mobilenet_v2", "--img-size", "64", "--batch-size", "8",
            "--workers", "0", "--trials", "2", "--space", "space.yaml", "--label-smoothing", "0.1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "runs" / "tune"
    assert "best: trial" in r.stdout and "train --cfg" in r.stdout
    for name in ("tune.csv", "tune.png", "args.yaml", "tune.db", "summary.json"):
        assert (folder / name).is_file(), name
    header = (folder / "tune.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert "label_smoothing" not in header and "weight_decay" not in header  # fixed by the command line / the file
    assert yaml.safe_load((folder / "args.yaml").read_text(encoding="utf-8"))["label_smoothing"] == 0.1
    r = cli("tune", "--resume", str(folder), "--trials", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 finished trials kept; 1 to run" in r.stdout


@pytest.mark.parametrize("space, message", [("lrr: {low: 0.001, high: 0.1}\n", "unknown key(s) lrr"),
                                            ("lr: {low: 0.1, high: 0.001}\n", "empty range"),
                                            ("lr: [\n", "not a YAML file")])
def test_tune_cli_bad_space_is_one_line(dataset, tmp_path, space, message):
    (tmp_path / "s.yaml").write_text(space, encoding="utf-8")
    r = cli("tune", "--data", str(dataset), "--space", "s.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: --space s.yaml") and message in r.stderr.splitlines()[0]
    assert not (tmp_path / "runs").exists()


def test_tune_cli_missing_data_and_not_a_tune_folder(tmp_path):
    r = cli("tune", "--data", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.startswith("error: ")
    assert "nowhere" in r.stderr.splitlines()[0]
    r = cli("tune", "--resume", str(tmp_path), cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "not a tune folder" in r.stderr


def test_train_cfg_bad_file_is_one_line(dataset, tmp_path):
    (tmp_path / "a.yaml").write_text("lr: 0.01\nlearning_rate: 3\n", encoding="utf-8")
    r = cli("train", "--cfg", "a.yaml", "--data", str(dataset), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: --cfg a.yaml: unknown option(s) learning_rate")
    (tmp_path / "b.yaml").write_text("augment: sideways\n", encoding="utf-8")
    r = cli("train", "--cfg", "b.yaml", "--data", str(dataset), cwd=tmp_path)
    assert r.returncode == 2 and "choose one of" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--cfg", "missing.yaml", "--data", str(dataset), cwd=tmp_path)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_train_cfg_values_yield_to_typed_options(dataset, tmp_path):
    """--cfg's values are the defaults of this command line: a typed option wins."""
    import argparse

    from transferlearn.cli import build_parser
    from transferlearn.cli.train import apply_cfg_file, config_from_args
    (tmp_path / "a.yaml").write_text(f"data: {dataset}\nlr: '1e-2'\nepochs: 7\naugment: light\n", encoding="utf-8")
    argv = ["train", "--cfg", str(tmp_path / "a.yaml"), "--epochs", "2"]
    args = build_parser().parse_args(argv)
    args._argv = argv
    apply_cfg_file(args)
    cfg = config_from_args(args)
    assert isinstance(args, argparse.Namespace)
    assert (cfg.lr, cfg.epochs, cfg.augment, cfg.data) == (0.01, 2, "light", str(dataset))


def test_tune_resume_refuses_options_it_would_ignore(tmp_path, capsys):
    """A resumed search keeps its own options and space: a typed --lr must not look as if it applied."""
    from transferlearn.cli import main
    (tmp_path / "tune").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["tune", "--resume", str(tmp_path / "tune"), "--lr", "0.1", "--epochs", "3", "--trials", "30"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--epochs, --lr cannot change it" in err and "--trials" in err and "Traceback" not in err
