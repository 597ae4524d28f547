"""--amp auto on a CPU with AMX: the run times fp32 against bf16 on its own model and keeps the faster, once per
CPU, model and batch shape; the timing leaves the run itself untouched, and a resumed run keeps its precision."""
from __future__ import annotations

import json

import pytest
import torch

from transferlearn.models import create_model
from transferlearn.train import precision, train
from transferlearn.train.precision import choose_amp, step_speeds

from conftest import FAST

CPU = torch.device("cpu")


def fake(speeds: dict, calls: list):
    def measure(model, shape, mode, freeze_stages):
        calls.extend((amp, tuple(shape)) for amp in speeds)
        return dict(speeds)
    return measure


@pytest.fixture
def amx(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)


def test_auto_keeps_the_faster_and_remembers_it(amx, tmp_path):
    m, calls, lines = torch.nn.Linear(2, 2), [], []
    args = (CPU, m, "efficientnet_lite0", (32, 3, 160, 160), "all-layers", 0, tmp_path)
    # EfficientNet-Lite0 on a 2-core AMX CPU: fp32 44 img/s, bf16 31 (docs/speed.md)
    assert choose_amp("auto", *args, log=lines.append, measure=fake({"off": 44.2, "bf16": 30.6}, calls)) == "off"
    assert [a for a, _ in calls] == ["off", "bf16"] and "fp32 44.2 img/s, bf16 30.6 img/s" in lines[-1]
    kept = json.loads((tmp_path / "amp.json").read_text(encoding="utf-8"))
    assert list(kept.values()) == [{"off": 44.2, "bf16": 30.6}]
    # the second run of the same model and shape reads the answer instead of timing again
    assert choose_amp("auto", *args, log=lines.append, measure=fake({"off": 1.0, "bf16": 99.0}, calls)) == "off"
    assert len(calls) == 2 and "measured earlier" in lines[-1]
    # another shape is another question; bf16 must win by the margin, not by noise
    big = (CPU, m, "resnet18", (32, 3, 224, 224), "all-layers", 0, tmp_path)
    assert choose_amp("auto", *big, log=lines.append, measure=fake({"off": 20.0, "bf16": 54.0}, calls)) == "bf16"
    even = (CPU, m, "mobilenet_v2", (32, 3, 160, 160), "all-layers", 0, tmp_path)
    assert choose_amp("auto", *even, log=lines.append, measure=fake({"off": 53.0, "bf16": 55.0}, calls)) == "off"
    assert len(json.loads((tmp_path / "amp.json").read_text(encoding="utf-8"))) == 3


def test_auto_times_nothing_where_the_answer_is_known(monkeypatch, tmp_path):
    def never(*a):
        raise AssertionError("timed")
    m, args = torch.nn.Linear(2, 2), ("lenet", (8, 1, 28, 28))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert choose_amp("auto", CPU, m, *args, "all-layers", 0, tmp_path, measure=never) == "off"  # no AMX: fp32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert choose_amp("bf16", CPU, m, *args, "all-layers", 0, tmp_path, measure=never) == "bf16"  # stated: as given
    assert choose_amp("off", CPU, m, *args, "all-layers", 0, tmp_path, measure=never) == "off"
    assert choose_amp("auto", CPU, m, *args, "last-layer", 0, tmp_path, measure=never) == "bf16"  # frozen backbone
    assert not (tmp_path / "amp.json").exists()


def test_a_failed_timing_falls_back_without_stopping_the_run(amx, tmp_path):
    def broken(*a):
        raise RuntimeError("out of memory")
    lines = []
    assert choose_amp("auto", CPU, torch.nn.Linear(2, 2), "x", (2, 3, 8, 8), "all-layers", 0, tmp_path,
                      log=lines.append, measure=broken) == "bf16"
    assert "failed: out of memory" in lines[-1]


def test_timing_leaves_the_runs_model_and_random_state_untouched():
    m = create_model("mobilenet_v2", 3, weights="none").to(memory_format=torch.channels_last)  # dropout, BatchNorm
    m.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    torch.manual_seed(7)
    rng = torch.get_rng_state()
    speeds = step_speeds(m, (4, 3, 32, 32), "all-layers", rounds=1)
    assert sorted(speeds) == ["bf16", "off"] and min(speeds.values()) > 0
    assert torch.equal(torch.get_rng_state(), rng)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running means and counts too
    assert all(p.grad is None for p in m.parameters())


def test_a_run_trains_in_the_measured_precision_and_a_resume_keeps_it(amx, dataset, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(precision, "step_speeds", fake({"off": 10.0, "bf16": 30.0}, calls))
    s = train(data=str(dataset), mode="all-layers", epochs=1, head_warmup=0, project=str(tmp_path), name="r",
              cache_dir=str(tmp_path / "cache"), **FAST)
    assert s["amp"] == "bf16" and [a for a, _ in calls] == ["off", "bf16"]
    assert calls[0][1] == (FAST["batch_size"], 3, s["train_size"], s["train_size"])  # the run's own batch shape
    assert torch.load(f"{s['run_dir']}/last.pt", weights_only=False)["amp"] == "bf16"
    # a fresh timing would pick fp32 now, but the resumed run keeps the precision it was trained in
    monkeypatch.setattr(precision, "step_speeds", fake({"off": 30.0, "bf16": 10.0}, calls))
    s2 = train(resume=s["run_dir"], epochs=2, quiet=True)
    assert s2["amp"] == "bf16" and len(calls) == 2


def test_the_head_warm_up_does_not_wait_for_the_timing(amx, dataset, tmp_path, monkeypatch):
    """all-layers' probe is epoch 0 and its features are fp32 whatever the precision: the timing comes after it, so
    the first useful model is there sooner; fine-tuning then trains in the measured precision."""
    from transferlearn.train import trainer
    order, calls = [], []
    measure = fake({"off": 10.0, "bf16": 30.0}, calls)
    monkeypatch.setattr(precision, "step_speeds", lambda *a: order.append("timing") or measure(*a))
    warm = trainer.warm_up_head
    monkeypatch.setattr(trainer, "warm_up_head", lambda *a, **k: order.append(("probe", a[6])) or warm(*a, **k))
    s = train(data=str(dataset), mode="all-layers", epochs=1, head_warmup=2, project=str(tmp_path), name="r",
              cache_dir=str(tmp_path / "cache"), **FAST)
    assert order == [("probe", "off"), "timing"]  # the probe's features in fp32, then the timing
    assert s["amp"] == "bf16" and torch.load(f"{s['run_dir']}/last.pt", weights_only=False)["amp"] == "bf16"
    chosen = type("C", (), {"amp": "bf16", "head_warmup": 25, "feature_cache": False})()
    assert not precision.probe_first(chosen, CPU, resumed=False)  # a precision the user chose is never timed
