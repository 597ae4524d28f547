"""The all-layers recipe: head warm-up on frozen features before fine-tuning, and early stopping."""
import csv

import pytest
import torch

from transferlearn import models
from transferlearn.checkpoint import load
from transferlearn.train import Callback, TrainConfig, train
from transferlearn.train.compare import compare
from transferlearn.train.stopping import converged, stalled_below_probe, stop_reason

from conftest import FAST


class _AtStart(Callback):
    """The model as fine-tuning receives it (after setup, before the first step)."""

    def on_fit_start(self, trainer):
        self.state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        self.requires_grad = [p.requires_grad for p in trainer.model.parameters()]


def test_head_warmup_trains_only_the_head_then_everything_trains(dataset, tmp_path):
    from transferlearn.train.callbacks import default_callbacks
    torch.manual_seed(0)
    pretrained = models.create_model("mobilenet_v2", 3, weights="imagenet").state_dict()
    spy = _AtStart()
    s = train(TrainConfig(data=str(dataset), mode="all-layers", epochs=1, head_warmup=3, warmup_head="keep",
                          project=str(tmp_path), **FAST), callbacks=[*default_callbacks(), spy])
    start = spy.state
    for k, v in pretrained.items():  # backbone weights AND BatchNorm statistics untouched by the warm-up
        if k.startswith("backbone."):
            assert torch.equal(v, start[k]), k
    assert not torch.equal(pretrained["head.1.weight"], start["head.1.weight"])  # the head did learn
    assert all(spy.requires_grad)  # and the whole network is handed to fine-tuning
    w = s["head_warmup"]
    assert w["epochs"] == 3 and w["views"] == 2 and 0 <= w["val_acc"] <= 1 and w["seconds"] > 0
    after = load(s["run_dir"] + "/last.pt")["model"]
    changed = [k for k in pretrained if k.startswith("backbone.") and k.endswith("weight")
               and not torch.equal(start[k], after[k])]
    assert len(changed) > 50
    assert load(s["run_dir"] + "/last.pt")["train_state"]["warmup"] == w  # travels with the resume point
    with open(s["run_dir"] + "/results.csv", encoding="utf-8-sig") as f:  # epoch 0: the warmed-up model
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"] and float(rows[0]["val_acc"]) == pytest.approx(w["val_acc"])


def test_warmed_up_head_is_a_candidate_for_best(dataset, tmp_path):
    # lr 0: fine-tuning changes no weight, so no epoch can beat epoch 0 and best.pt is the warmed-up model
    s = train(data=str(dataset), mode="all-layers", epochs=2, head_warmup=2, lr=0.0, project=str(tmp_path),
              **{**FAST, "amp": "off"})
    best = load(s["run_dir"] + "/best.pt")
    if s["best_epoch"] == 0:
        assert best["epoch"] == 0 and best["metrics"]["val_acc"] == pytest.approx(s["head_warmup"]["val_acc"])
    assert s["best_val_acc"] >= s["head_warmup"]["val_acc"]
    from transferlearn.report import fit_reading
    reading = " ".join(fit_reading({**s, "best_epoch": 0}))
    assert "never beat the warmed-up head" in reading and "2 epochs on the frozen backbone" in reading


def test_no_warmup_means_the_head_starts_at_its_init(dataset, tmp_path):
    torch.manual_seed(0)
    init = models.create_model("mobilenet_v2", 3, weights="imagenet").state_dict()
    spy = _AtStart()
    from transferlearn.train.callbacks import default_callbacks
    s = train(TrainConfig(data=str(dataset), mode="all-layers", epochs=1, head_warmup=0, project=str(tmp_path),
                          **FAST), callbacks=[*default_callbacks(), spy])
    assert torch.equal(init["head.1.weight"], spy.state["head.1.weight"])
    assert s["head_warmup"] is None


@pytest.mark.parametrize("mode", ["last-layer", "scratch"])
def test_head_warmup_belongs_to_all_layers(dataset, tmp_path, mode):
    with pytest.raises(ValueError, match="--head-warmup .* all-layers"):
        train(data=str(dataset), mode=mode, epochs=1, head_warmup=2, project=str(tmp_path), **FAST)


def test_compare_gives_head_warmup_to_all_layers_only(dataset, tmp_path):
    out = compare(TrainConfig(data=str(dataset), epochs=1, head_warmup=1, project=str(tmp_path), name="cmp", **FAST),
                  modes=["last-layer", "all-layers"])
    assert out["modes"]["all-layers"]["head_warmup"]["epochs"] == 1
    assert out["modes"]["last-layer"]["head_warmup"] is None


def test_converged():
    rows = lambda *accs: [{"val_acc": a} for a in accs]  # noqa: E731
    assert not converged(rows(0.5, 0.6, 0.7), 1)
    assert converged(rows(0.5, 0.7, 0.7), 1)  # equal is not better
    assert not converged(rows(0.5, 0.7, 0.6), 2)
    assert converged(rows(0.5, 0.7, 0.6, 0.65), 2)
    assert not converged(rows(0.9, 0.1), 0)  # 0: never
    assert not converged(rows(0.9), 1)  # nothing before to compare with
    assert converged([{"val_acc": 0.8}, {"val_acc": None}, {"val_acc": 0.7}], 1)  # skipped evaluations don't count


def test_patience_stops_a_run_that_stopped_improving(dataset, tmp_path):
    # lr 0 on a frozen backbone: nothing changes, so val accuracy never improves after epoch 1
    s = train(data=str(dataset), mode="last-layer", epochs=5, lr=0.0, patience=2,
              project=str(tmp_path), name="flat", **FAST)
    assert s["stopped_early"] and s["epochs_run"] == 3 and s["epochs"] == 5 and s["best_epoch"] == 1
    with open(tmp_path / "flat" / "results.csv", encoding="utf-8-sig") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    report = (tmp_path / "flat" / "report.html").read_text(encoding="utf-8")
    assert "at epoch 1 of 5 (stopped after 3)" in report
    again = train(resume=str(tmp_path / "flat"))  # a converged run is complete: resuming trains nothing more
    assert again["epochs_run"] == 3


def test_patience_zero_trains_every_epoch(dataset, tmp_path):
    s = train(data=str(dataset), mode="last-layer", epochs=3, lr=0.0, patience=0,
              project=str(tmp_path), **FAST)
    assert not s["stopped_early"] and s["epochs_run"] == 3


def test_public_train_can_be_called_twice(dataset, tmp_path):
    import transferlearn  # importing the train package binds transferlearn.train to it: it must stay callable
    a = transferlearn.train(data=str(dataset), mode="last-layer", epochs=1, project=str(tmp_path), **FAST)
    b = transferlearn.train(data=str(dataset), mode="last-layer", epochs=1, project=str(tmp_path), **FAST)
    assert a["run_dir"] != b["run_dir"] and a["best_val_acc"] == b["best_val_acc"]


@pytest.mark.parametrize("start", ["reset", "keep"])
def test_resume_after_the_warmup_is_exact(dataset, tmp_path, start):
    kw = dict(data=str(dataset), mode="all-layers", head_warmup=3, warmup_head=start, scheduler="none",
              project=str(tmp_path), **{**FAST, "amp": "off"})
    a = train(epochs=2, name="a", **kw)
    train(epochs=1, name="b", **kw)
    b = train(resume=str(tmp_path / "b"), epochs=2)  # continues after epoch 1; the warm-up is not redone
    untimed = lambda w: {k: v for k, v in w.items() if not k.endswith("seconds") and k != "time"}  # noqa: E731
    assert b["resumed"] and untimed(b["head_warmup"]) == untimed(a["head_warmup"])  # the same warm-up, done once
    wa, wb = load(a["run_dir"] + "/last.pt")["model"], load(b["run_dir"] + "/last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with open(tmp_path / "b" / "results.csv", encoding="utf-8-sig") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1", "2"]


class _BestAtEpoch0(Callback):
    """best.pt's head as written for epoch 0 (later epochs may overwrite the file)."""

    def on_epoch_end(self, trainer, row):
        if row["epoch"] == 0:
            self.head = {k[5:]: v for k, v in load(trainer.run_dir / "best.pt")["model"].items() if k.startswith("head.")}


def test_warmup_reset_fine_tunes_exactly_as_without_the_warmup(dataset, tmp_path):
    from transferlearn.train.callbacks import default_callbacks
    kw = dict(data=str(dataset), mode="all-layers", epochs=2, patience=0, warmup_patience=0, project=str(tmp_path),
              **{**FAST, "amp": "off"})
    torch.manual_seed(0)
    init = models.create_model("mobilenet_v2", 3, weights="imagenet").state_dict()
    plain = train(head_warmup=0, name="plain", **kw)
    spy, best0 = _AtStart(), _BestAtEpoch0()
    s = train(TrainConfig(head_warmup=4, warmup_head="reset", name="reset", **kw),
              callbacks=[*default_callbacks(), spy, best0])
    # fine-tuning starts from the initial head, as without the warm-up ...
    assert all(torch.equal(init[k], spy.state[k]) for k in init if k.startswith("head."))
    # ... and best.pt's epoch 0 is the probe: a trained head
    assert not torch.equal(best0.head["1.weight"], init["head.1.weight"])
    assert s["head_warmup"]["start"] == "reset" and s["best_val_acc"] >= s["head_warmup"]["val_acc"]
    rows = {}
    for name in ("plain", "reset"):
        with open(tmp_path / name / "results.csv", encoding="utf-8-sig") as f:
            rows[name] = [{k: r[k] for k in ("epoch", "train_loss", "val_loss", "val_acc")} for r in csv.DictReader(f)]
    assert [r["epoch"] for r in rows["reset"]] == ["0", "1", "2"]
    assert rows["reset"][1:] == rows["plain"]  # bit-equal losses: same weights, batches and RNG
    wa, wb = load(plain["run_dir"] + "/last.pt")["model"], load(s["run_dir"] + "/last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


class _DieAfterEpoch0(Callback):
    def on_checkpoint(self, trainer, ckpt):
        if ckpt["epoch"] == 0:
            raise RuntimeError("killed after the warm-up's checkpoint")


def test_warmup_reset_resumes_from_the_fresh_head(dataset, tmp_path):
    """A run that dies between the warm-up and fine-tuning's first epoch continues as if it had not."""
    from transferlearn.train.callbacks import default_callbacks
    kw = dict(data=str(dataset), mode="all-layers", epochs=1, head_warmup=3, warmup_head="reset",
              project=str(tmp_path), **{**FAST, "amp": "off"})
    a = train(name="a", **kw)
    with pytest.raises(RuntimeError, match="killed"):
        train(TrainConfig(name="b", **kw), callbacks=[*default_callbacks(), _DieAfterEpoch0()])
    b = train(resume=str(tmp_path / "b"))
    wa, wb = load(a["run_dir"] + "/last.pt")["model"], load(b["run_dir"] + "/last.pt")["model"]
    assert b["resumed"] and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert load(b["run_dir"] + "/best.pt")["epoch"] == a["best_epoch"]


def test_all_layers_defaults_warm_up_the_head_and_stop_early():
    c = TrainConfig(data="x", mode="all-layers", arch="efficientnet_lite0").resolved()
    assert (c.head_warmup, c.warmup_head, c.bn_eval_epochs, c.patience, c.warmup_patience, c.epochs) == \
        (25, "keep", -1, 0, 2, 10)  # LP-FT on the probe's features, where measured (docs/finetune.md)
    # MobileNetV2's fine-tuning broke with them; unmeasured archs fine-tune from a fresh head, as before
    for arch in ("mobilenet_v2", "resnet18"):
        c = TrainConfig(data="x", mode="all-layers", arch=arch).resolved()
        assert (c.head_warmup, c.warmup_head, c.bn_eval_epochs, c.warmup_patience) == (25, "reset", 0, 2), arch
    # BatchNorm stays on running statistics only where fine-tuning starts from the probe's head
    lite0 = dict(data="x", mode="all-layers", arch="efficientnet_lite0")
    for given, bn in ((dict(warmup_head="reset"), 0), (dict(head_warmup=0), 0), (dict(bn_eval_epochs=1), 1)):
        assert TrainConfig(**lite0, **given).resolved().bn_eval_epochs == bn, given
    assert TrainConfig(data="x", mode="all-layers", arch="mobilenet_v2", warmup_head="keep").resolved() \
        .bn_eval_epochs == -1  # asked for: the kept head gets the features it was fitted to
    assert TrainConfig(data="x", mode="last-layer").resolved().bn_eval_epochs == 0
    # the weights' moving average starts at the probe: a default only where fine-tuning starts from its head
    assert TrainConfig(**lite0).resolved().ema == 1.0  # a tenth of the run: 10 epochs
    assert TrainConfig(**lite0, epochs=5).resolved().ema == 0.5  # the demo's
    for given in (dict(warmup_head="reset"), dict(head_warmup=0), dict(arch="mobilenet_v2"), dict(mode="scratch"),
                  dict(mode="last-layer")):
        assert TrainConfig(**{**lite0, **given}).resolved().ema == 0.0, given
    assert TrainConfig(**lite0, ema=0.5).resolved().ema == 0.5
    with pytest.raises(ValueError, match="--warmup-head probe: choose one of reset, keep"):
        TrainConfig(data="x", mode="all-layers", arch="mobilenet_v2", warmup_head="probe").resolved()


def test_stalled_below_probe():
    h = lambda probe, *accs: [{"epoch": 0, "val_acc": probe}] + [{"epoch": i, "val_acc": a}  # noqa: E731
                                                               for i, a in enumerate(accs, 1)]
    assert stalled_below_probe(h(0.96, 0.94, 0.92, 0.92), 2)  # hymenoptera: fine-tuning peaked at epoch 1
    assert not stalled_below_probe(h(0.96, 0.94, 0.92), 2)  # not yet 2 evaluations after its best
    assert not stalled_below_probe(h(0.85, 0.77, 0.81, 0.83, 0.84), 2)  # Fashion-MNIST: still climbing
    assert not stalled_below_probe(h(0.85, 0.86, 0.84, 0.84), 2)  # it beat the probe: only --patience applies
    assert stalled_below_probe(h(0.96, 0.94, 0.94, 0.94), 2)  # equal to its own best is not better
    assert not stalled_below_probe(h(0.86, 0.75, 0.86, 0.85, 0.85), 2)  # it reached the probe: not below it
    assert not stalled_below_probe(h(0.96, 0.94, 0.92, 0.92), 0)  # 0: never
    assert not stalled_below_probe([{"epoch": i, "val_acc": 0.5} for i in (1, 2, 3, 4)], 2)  # no warm-up
    assert "still below the head warm-up's probe" in stop_reason(h(0.96, 0.94, 0.92, 0.92), 0, 2, 10)
    assert stop_reason(h(0.96, 0.94, 0.92, 0.92), 0, 2, 3) is None  # the last epoch: nothing to stop
    assert "converged" in stop_reason(h(0.8, 0.9, 0.85, 0.85), 2, 2, 10)


def test_warmup_patience_stops_fine_tuning_that_cannot_catch_the_probe(dataset, tmp_path):
    # LeNet has no BatchNorm or dropout: at lr 0 fine-tuning changes nothing, so every epoch scores the fresh head
    s = train(data=str(dataset), mode="all-layers", arch="lenet", weights="none", img_size=32, epochs=8, lr=0.0,
              head_warmup=60, warmup_patience=2, project=str(tmp_path), name="w", batch_size=8, workers=0,
              quiet=True, amp="off")
    with open(tmp_path / "w" / "results.csv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert len({r["val_acc"] for r in rows[1:]}) == 1 and float(rows[1]["val_acc"]) < float(rows[0]["val_acc"])
    assert s["best_epoch"] == 0 and s["stopped_early"] and s["epochs_run"] == 3 and s["epochs"] == 8
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
