"""How fine-tuning meets its head warm-up: BatchNorm on running statistics (--bn-eval-epochs), a backbone lr
warm-up (--backbone-warmup), the head's own lr (--head-lr-scale), and compare's verdict when fine-tuning never
beat the probe."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transferlearn import models
from transferlearn.checkpoint import load
from transferlearn.train import Callback, TrainConfig, train
from transferlearn.train.compare import compare
from transferlearn.train.callbacks import default_callbacks
from transferlearn.train.state import bn_eval_at, create_state, warmup_factor

from conftest import FAST

EXACT = {**FAST, "amp": "off"}


class _AtEpochEnd(Callback):
    """The model's state after each fine-tuning epoch."""

    def __init__(self):
        self.states = {}

    def on_epoch_end(self, trainer, row):
        self.states[row["epoch"]] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _bn_stats(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith("backbone.") and k.endswith("running_mean")}


def test_bn_eval_epochs_keep_the_running_statistics_while_the_weights_train(dataset, tmp_path):
    torch.manual_seed(0)
    pretrained = models.create_model("mobilenet_v2", 3, weights="imagenet").state_dict()
    spy = _AtEpochEnd()
    train(TrainConfig(data=str(dataset), mode="all-layers", epochs=2, head_warmup=0, bn_eval_epochs=1,
                      project=str(tmp_path), **EXACT), callbacks=[*default_callbacks(), spy])
    stats = _bn_stats(pretrained)
    assert len(stats) > 30
    after1, after2 = spy.states[1], spy.states[2]
    assert all(torch.equal(v, after1[k]) for k, v in stats.items())  # epoch 1: running statistics untouched
    moved = [k for k in pretrained if k.startswith("backbone.") and k.endswith("weight")
             and not torch.equal(pretrained[k], after1[k])]
    assert len(moved) > 50  # ... while the backbone's weights (BatchNorm's affine ones too) trained
    assert any(k.replace("running_mean", "weight") in moved for k in stats)
    assert not any(torch.equal(v, after2[k]) for k, v in stats.items())  # epoch 2: batch statistics again


def test_bn_eval_throughout(dataset, tmp_path):
    torch.manual_seed(0)
    pretrained = models.create_model("mobilenet_v2", 3, weights="imagenet").state_dict()
    s = train(data=str(dataset), mode="all-layers", epochs=2, head_warmup=2, warmup_head="keep", bn_eval_epochs=-1,
              project=str(tmp_path), **EXACT)
    last = load(s["run_dir"] + "/last.pt")["model"]
    assert all(torch.equal(v, last[k]) for k, v in _bn_stats(pretrained).items())
    assert [bn_eval_at(e, -1) for e in (1, 50)] == [True, True]
    assert [bn_eval_at(e, 2) for e in (1, 2, 3)] == [True, True, False]
    assert not bn_eval_at(1, 0)


def test_warmup_factor_rises_linearly_over_the_given_epochs():
    f = [warmup_factor(e, s, 4, 1.5) for e in (1, 2, 3) for s in range(4)]
    assert f == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1, 1, 1, 1, 1, 1])
    assert warmup_factor(1, 0, 4, 0) == 1.0 and warmup_factor(1, 0, 0, 1) == 1.0


@pytest.mark.parametrize("decay", [1.0, 0.5])
def test_head_lr_scale_and_backbone_groups(decay):
    torch.manual_seed(0)
    model = models.create_model("mobilenet_v2", 3, weights="none")
    st = create_state(model, "all-layers", "adamw", 1e-3, 0.9, 0.0, "none", 2, 7, 0.1, layer_decay=decay,
                      head_lr_scale=4.0)
    groups = st.optimizer.param_groups
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in groups[-1]["params"]} == head and groups[-1]["lr"] == pytest.approx(4e-3)
    assert max(g["lr"] for g in groups[:-1]) == pytest.approx(1e-3 * decay)  # the last stage: lr x decay
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    plain = create_state(model, "all-layers", "adamw", 1e-3, 0.9, 0.0, "none", 2, 7, 0.1)
    assert len(plain.optimizer.param_groups) == 1  # one group, as checkpoints made before these options hold
    split = create_state(model, "all-layers", "adamw", 1e-3, 0.9, 0.0, "none", 2, 7, 0.1, backbone_warmup=1)
    assert [g["lr"] for g in split.optimizer.param_groups] == [1e-3, 1e-3]


class _Lrs(Callback):
    """The lr the optimiser holds at each checkpoint (between steps) and after each epoch."""

    def __init__(self):
        self.lrs = []

    def on_checkpoint(self, trainer, ckpt):
        self.lrs.append([g["lr"] for g in ckpt["train_state"]["optimizer"]["param_groups"]])


def test_backbone_warmup_moves_the_backbone_less_and_keeps_the_scheduler_lr(dataset, tmp_path):
    torch.manual_seed(0)
    init = models.create_model("mobilenet_v2", 3, weights="imagenet").state_dict()
    kw = dict(data=str(dataset), mode="all-layers", epochs=1, head_warmup=0, scheduler="none", checkpoint_steps=1,
              project=str(tmp_path), **EXACT)
    lrs = _Lrs()
    a = train(TrainConfig(backbone_warmup=8.0, name="warm", **kw), callbacks=[*default_callbacks(), lrs])
    b = train(name="plain", **kw)
    assert len(lrs.lrs) > 2 and all(lr == pytest.approx([3e-4, 3e-4]) for lr in lrs.lrs)  # the scheduler's, kept
    wa, wb = load(a["run_dir"] + "/last.pt")["model"], load(b["run_dir"] + "/last.pt")["model"]
    conv = "backbone.features.0.0.weight"
    assert (wa[conv] - init[conv]).abs().sum() < 0.5 * (wb[conv] - init[conv]).abs().sum()


class _DieAtStep(Callback):
    def __init__(self, step):
        self.step = step

    def on_checkpoint(self, trainer, ckpt):
        if ckpt["epoch"] == 1 and ckpt["train_state"]["progress"]["step"] == self.step:
            raise RuntimeError("killed mid-epoch")


def test_resume_mid_warmup_is_exact(dataset, tmp_path):
    """Killed inside the backbone's lr warm-up and the BatchNorm-eval epochs, the run continues to the very
    weights of the run that was never stopped."""
    kw = dict(data=str(dataset), mode="all-layers", epochs=3, head_warmup=2, warmup_head="keep", bn_eval_epochs=2,
              backbone_warmup=1.5, checkpoint_steps=1, project=str(tmp_path), **EXACT)
    wa, wb = _uninterrupted_and_resumed(kw, tmp_path)
    oa, ob = wa["train_state"]["optimizer"], wb["train_state"]["optimizer"]
    assert all(torch.equal(oa["state"][i]["exp_avg"], ob["state"][i]["exp_avg"]) for i in oa["state"])


def _uninterrupted_and_resumed(kw: dict, tmp_path) -> tuple[dict, dict]:
    """last.pt of a run never stopped and of the same run killed after fine-tuning's first step and resumed, once
    their weights and results.csv rows are checked equal."""
    a = train(name="a", **kw)
    with pytest.raises(RuntimeError, match="killed"):
        train(TrainConfig(name="b", **kw), callbacks=[*default_callbacks(), _DieAtStep(1)])
    b = train(resume=str(tmp_path / "b"))
    wa, wb = load(a["run_dir"] + "/last.pt"), load(b["run_dir"] + "/last.pt")
    assert b["resumed"] and all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])
    assert _rows(a["run_dir"]) == _rows(b["run_dir"])
    return wa, wb


def _rows(run: str) -> list[dict]:
    with open(Path(run) / "results.csv", encoding="utf-8-sig") as f:
        return [{k: v for k, v in r.items() if k not in ("seconds", "time")} for r in csv.DictReader(f)]


@pytest.mark.parametrize("opts,match", [
    (dict(mode="all-layers", bn_eval_epochs=-2), "--bn-eval-epochs -2"),
    (dict(mode="all-layers", head_lr_scale=0.0), "--head-lr-scale"),
    (dict(mode="last-layer", bn_eval_epochs=1), "belong to --mode all-layers"),
    (dict(mode="scratch", backbone_warmup=1.0), "belong to --mode all-layers"),
    (dict(mode="all-layers", ema=-1.0), "--ema -1"),
    (dict(mode="last-layer", ema=1.0), "--ema averages"),
])
def test_finetuning_options_are_checked(opts, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(data="x", arch="mobilenet_v2", **opts).resolved()


class _Checkpoints(Callback):
    """Every resume point's model and trained weights, in order."""

    def __init__(self):
        self.ckpts = []

    def on_checkpoint(self, trainer, ckpt):
        ts = ckpt["train_state"]
        self.ckpts.append({"epoch": ckpt["epoch"], "step": ts["progress"]["step"],
                           "model": {k: v.clone() for k, v in ckpt["model"].items()},
                           "trained": {k: v.clone() for k, v in ts["trained"].items()} if "trained" in ts else None})


def _distance(a: dict, b: dict, prefix: str = "backbone.") -> float:
    return sum((a[k].float() - b[k].float()).abs().sum().item() for k in a
               if k.startswith(prefix) and a[k].is_floating_point())


@pytest.mark.parametrize("length,near_probe", [(1000.0, True), (0.01, False)])
def test_ema_is_validated_and_shipped_and_starts_at_the_probe(dataset, tmp_path, length, near_probe):
    """A long average stays next to the weights fine-tuning started from (the probe) while the trained weights
    move; a very short one follows them. The checkpoints and best.pt hold the average, what was validated."""
    seen = _Checkpoints()
    s = train(TrainConfig(data=str(dataset), mode="all-layers", epochs=2, head_warmup=2,
                          warmup_head="keep", warmup_patience=0, ema=length, backbone_runtime="torch",
                          project=str(tmp_path), name="run", **EXACT), callbacks=[*default_callbacks(), seen])
    probe = seen.ckpts[0]  # after the warm-up, before fine-tuning's first step: no average yet
    assert probe["epoch"] == 0 and probe["trained"] is None
    end = seen.ckpts[-1]
    moved = _distance(end["trained"], probe["model"])
    assert moved > 0
    if near_probe:
        assert _distance(end["model"], probe["model"]) < 0.05 * moved
    else:
        assert _distance(end["model"], end["trained"]) < 0.05 * moved
    last = load(s["run_dir"] + "/last.pt")
    assert all(torch.equal(last["model"][k], end["model"][k]) for k in end["model"])
    best = load(s["run_dir"] + "/best.pt")
    if best["epoch"] == 2:
        assert all(torch.equal(best["model"][k], end["model"][k]) for k in end["model"])
    args = (Path(s["run_dir"]) / "args.yaml").read_text(encoding="utf-8")
    assert f"ema: {length}" in args


def test_resume_with_ema_is_exact(dataset, tmp_path):
    """Killed mid-epoch, the run continues both the trained weights and their average to the very values of the
    run that was never stopped."""
    kw = dict(data=str(dataset), mode="all-layers", epochs=2, head_warmup=2, warmup_head="keep", bn_eval_epochs=-1,
              ema=0.5, warmup_patience=0, checkpoint_steps=1, project=str(tmp_path), **EXACT)
    wa, wb = _uninterrupted_and_resumed(kw, tmp_path)
    ta, tb = wa["train_state"]["trained"], wb["train_state"]["trained"]
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert not all(torch.equal(ta[k], wa["model"][k]) for k in ta)  # the average is not the trained weights
    assert wa["train_state"]["ema_steps"] == wb["train_state"]["ema_steps"] > 1


def test_compare_says_when_fine_tuning_did_not_improve_the_probe(dataset, tmp_path, capsys):
    # lr 0, BatchNorm on running statistics, fine-tuning from the probe's head: no weight or statistic moves,
    # so no fine-tuning epoch can be better than epoch 0
    out = compare(TrainConfig(data=str(dataset), epochs=2, lr=0.0, head_warmup=3, warmup_head="keep",
                              bn_eval_epochs=-1, warmup_patience=0, backbone_runtime="torch", project=str(tmp_path),
                              name="cmp", **EXACT), modes=["last-layer", "all-layers"])  # options: all-layers'
    assert out["modes"]["last-layer"]["head_warmup"] is None
    s = out["modes"]["all-layers"]
    assert s["best_epoch"] == 0
    printed = capsys.readouterr().out
    assert ("all-layers' best model is its head warm-up: fine-tuning did not improve it (2 fine-tuning epochs, "
            "none above the probe's") in printed
    report = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    assert "all-layers&#x27; best model is its head warm-up: fine-tuning did not improve it" in report
    assert "BatchNorm on the running statistics the probe was fitted with (--bn-eval-epochs)" in report


def test_no_verdict_when_fine_tuning_improved():
    from transferlearn.reporting.report import probe_verdict
    s = {"head_warmup": {"val_acc": 0.7}, "best_epoch": 3, "epochs_run": 5, "best_val_acc": 0.8}
    assert probe_verdict("all-layers", s) is None
    assert probe_verdict("all-layers", {**s, "head_warmup": None, "best_epoch": 0}) is None
    assert "fine-tuning did not improve it (5 fine-tuning epochs" in probe_verdict("all-layers", {**s, "best_epoch": 0})


def _cli(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    exe = str(Path(sys.executable).parent / "transferlearn")
    return subprocess.run([exe, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_fine_tuning_options(dataset, tmp_path):
    r = _cli("train", "--data", str(dataset), "--mode", "all-layers", "--arch", "mobilenet_v2", "--img-size", "48",
             "--batch-size", "8", "--workers", "0", "--epochs", "1", "--head-warmup", "2", "--warmup-head", "keep",
             "--bn-eval-epochs", "-1", "--backbone-warmup", "0.5", "--head-lr-scale", "2", "--quiet",
             "--project", str(tmp_path), "--name", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    args = (tmp_path / "run" / "args.yaml").read_text(encoding="utf-8")
    assert "bn_eval_epochs: -1" in args and "backbone_warmup: 0.5" in args and "head_lr_scale: 2.0" in args
    assert (tmp_path / "run" / "best.pt").is_file()
    bad = _cli("train", "--data", str(dataset), "--mode", "last-layer", "--bn-eval-epochs", "1",
               "--project", str(tmp_path), cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    lines = [x for x in bad.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "--mode all-layers" in lines[0]
