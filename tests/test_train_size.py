"""--train-size: train at a smaller crop than the eval size (train low, test high)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from defects import noise_image  # noqa: E402

from conftest import FAST  # noqa: E402
from transferlearn import trainer  # noqa: E402
from transferlearn.train import trainer as train_module  # noqa: E402
from transferlearn.checkpoint import load  # noqa: E402
from transferlearn.data import AUGMENT_PRESETS, eval_transform, preprocess_config, train_transform  # noqa: E402
from transferlearn.modes import DEFAULTS  # noqa: E402
from transferlearn.trainer import TrainConfig  # noqa: E402


@pytest.mark.parametrize("augment", AUGMENT_PRESETS)
def test_train_transform_makes_train_size_crops(augment):
    pre = preprocess_config(48, (0.5,) * 3, (0.5,) * 3, train_size=32)
    img = noise_image(2, (70, 55))
    assert train_transform(pre, augment)(img).shape == (3, 32, 32)
    assert eval_transform(pre)(img).shape == (3, 48, 48)  # eval and inference keep img_size


def test_preprocess_without_train_size_trains_at_img_size():
    pre = preprocess_config(40, (0.5,) * 3, (0.5,) * 3).to_dict()  # as a checkpoint holds it
    assert pre["train_size"] == 40
    del pre["train_size"]  # checkpoints written before --train-size existed
    assert train_transform(pre, "standard")(noise_image(0, (60, 50))).shape == (3, 40, 40)


def test_train_size_defaults_by_mode():
    for mode, d in DEFAULTS.items():
        c = TrainConfig(mode=mode, img_size=224).resolved()
        expected = 224 if d.train_scale == 1 else int(round(224 * d.train_scale / 8)) * 8
        assert c.train_size == expected and c.train_size % 8 == 0
    assert TrainConfig(mode="last-layer").resolved().train_size == 224  # features cached at full size
    assert TrainConfig(mode="all-layers", train_size=200).resolved().train_size == 200  # explicit wins
    with pytest.raises(ValueError, match="--train-size"):
        TrainConfig(mode="all-layers", train_size=4).resolved()


def test_training_batches_at_train_size_validation_at_img_size(dataset, tmp_path, monkeypatch):
    shapes = {True: set(), False: set()}  # model.training -> input sizes seen
    make = train_module.create_model

    def spy(*a, **k):
        m = make(*a, **k)
        m.register_forward_pre_hook(lambda mod, args: shapes[mod.training].add(tuple(args[0].shape[-2:])))
        return m

    monkeypatch.setattr(train_module, "create_model", spy)
    s = trainer.train(data=str(dataset), mode="all-layers", epochs=1, train_size=48, project=str(tmp_path / "r"),
                      **FAST)
    assert shapes == {True: {(48, 48)}, False: {(64, 64)}}
    ck = load(s["run_dir"] + "/best.pt")
    assert ck["preprocess"]["img_size"] == 64 and ck["preprocess"]["train_size"] == 48
    assert s["train_size"] == 48 and s["img_size"] == 64


# ---------------------------------------------------------------- --progressive-resize

def test_progressive_schedule_climbs_to_train_size_by_80_percent_of_the_epochs():
    from transferlearn.train.pipeline import train_size_at
    sizes = [train_size_at(e, 10, 96, 160) for e in range(1, 11)]
    assert sizes[0] == 96 and sizes[7:] == [160, 160, 160]  # epochs 8-10 at the final size
    assert sizes == sorted(sizes) and all(s % 8 == 0 for s in sizes) and len(set(sizes)) >= 6
    assert [train_size_at(e, 5, 112, 160) for e in range(1, 6)] == [112, 128, 144, 160, 160]
    assert train_size_at(1, 1, 96, 160) == 160  # one epoch: the final size
    assert train_size_at(1, 10, 0, 160) == 160 and train_size_at(3, 10, 200, 160) == 160  # off


def test_progressive_resize_trains_growing_crops_and_validates_at_img_size(dataset, tmp_path, monkeypatch):
    shapes = {True: [], False: set()}  # model.training -> input sizes seen, training in order
    make = train_module.create_model

    def spy(*a, **k):
        m = make(*a, **k)
        m.register_forward_pre_hook(lambda mod, args: shapes[mod.training].append(args[0].shape[-1])
                                    if mod.training else shapes[False].add(tuple(args[0].shape[-2:])))
        return m

    monkeypatch.setattr(train_module, "create_model", spy)
    s = trainer.train(data=str(dataset), mode="all-layers", epochs=3, train_size=48, progressive_resize=24,
                      head_warmup=0, project=str(tmp_path / "r"), **FAST)
    per_epoch = len(shapes[True]) // 3
    assert [shapes[True][i * per_epoch] for i in range(3)] == [24, 48, 48]  # epoch 2 = round(0.8 * 3): 48
    assert set(shapes[True]) == {24, 48} and shapes[False] == {(64, 64)}
    import csv
    from transferlearn.checkpoint import load as load_ck
    ck = load_ck(s["run_dir"] + "/last.pt")
    assert [r["train_size"] for r in ck["train_state"]["history"]] == [24, 48, 48]
    assert ck["preprocess"]["train_size"] == 48  # inference never sees the schedule
    with open(s["run_dir"] + "/results.csv", encoding="utf-8-sig") as f:
        assert [r["train_size"] for r in csv.DictReader(f)] == ["24", "48", "48"]  # the curves' crop, per epoch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(s["run_dir"]).Reload()
    assert [e.value for e in ev.Scalars("train_size")] == [24, 48, 48]
    html = (Path(s["run_dir"]) / "report.html").read_text(encoding="utf-8")
    assert "train crop px" in html


@pytest.mark.parametrize("options, message", [
    (dict(mode="last-layer"), "last-layer"),
    (dict(mode="all-layers", cache=False), "batched pipeline"),
    (dict(mode="all-layers", augment="strong"), "batched pipeline"),
    (dict(mode="all-layers", progressive_resize=200), "up to the training crop"),
])
def test_progressive_resize_says_where_it_does_not_apply(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"progressive_resize": 96, "img_size": 224, **options}).resolved()


def test_progressive_resize_resumes_exactly_across_a_size_change(tmp_path):
    # stopped after epoch 1 (16 px crops), resumed for epochs 2-3 (32 px): the same tensors as never stopped
    from conftest import make_dataset
    from test_resume import API, assert_same_final_state
    from transferlearn.train.callbacks import Callback, default_callbacks

    class StopAfterEpoch1(Callback):
        def on_checkpoint(self, trainer, ckpt):
            if ckpt["epoch"] == 1:
                raise KeyboardInterrupt

    data = make_dataset(tmp_path / "data", n_train=6, n_val=2)
    opts = dict(data=str(data), project=str(tmp_path), progressive_resize=16, **API)
    trainer.train(name="ref", **opts)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(name="cut", callbacks=[*default_callbacks(), StopAfterEpoch1()], **opts)
    s = trainer.train(resume=str(tmp_path / "cut"))
    assert s["resumed"]
    assert [r["train_size"] for r in load(tmp_path / "cut" / "last.pt")["train_state"]["history"][1:]] == [16, 32, 32]
    assert_same_final_state(tmp_path / "ref", tmp_path / "cut")
