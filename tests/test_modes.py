"""The three training modes do what their names promise."""
import torch

from transferlearn import models
from transferlearn.checkpoint import load
from transferlearn.trainer import train

from conftest import FAST


def _backbone_state(sd):
    return {k: v.clone() for k, v in sd.items() if k.startswith("backbone.")}


def test_last_layer_freezes_backbone_weights_and_bn_stats(dataset, tmp_path):
    before = models.create_model("mobilenet_v2", 3, weights="imagenet").state_dict()
    s = train(data=str(dataset), mode="last-layer", epochs=2, lr=0.05, project=str(tmp_path / "runs"), **FAST)
    after = load(s["run_dir"] + "/last.pt")["model"]
    bb_before, bb_after = _backbone_state(before), _backbone_state(after)
    assert bb_before.keys() == bb_after.keys()
    bn_stats = [k for k in bb_before if k.endswith(("running_mean", "running_var"))]
    assert len(bn_stats) > 50
    for k in bb_before:  # weights AND BatchNorm running statistics bit-identical
        assert torch.equal(bb_before[k], bb_after[k]), k
    assert s["trainable_params"] == 1280 * 3 + 3
    assert not torch.equal(after["head.1.weight"], before["head.1.weight"])


def test_all_layers_changes_backbone(dataset, tmp_path):
    before = models.create_model("mobilenet_v2", 3, weights="imagenet").state_dict()
    s = train(data=str(dataset), mode="all-layers", epochs=1, project=str(tmp_path / "runs"), **FAST)
    after = load(s["run_dir"] + "/last.pt")["model"]
    changed_w = [k for k in _backbone_state(before) if k.endswith("weight") and not torch.equal(before[k], after[k])]
    changed_bn = [k for k in _backbone_state(before) if k.endswith("running_mean") and not torch.equal(before[k], after[k])]
    assert len(changed_w) > 50 and len(changed_bn) > 10
    assert s["trainable_params"] == s["total_params"]


def test_scratch_never_loads_pretrained(dataset, tmp_path, monkeypatch):
    def refuse(net):
        raise AssertionError("scratch mode loaded ImageNet weights")
    monkeypatch.setattr(models.get_spec("mobilenet_v2"), "load_imagenet", refuse)
    s = train(data=str(dataset), mode="scratch", epochs=1, project=str(tmp_path / "runs"), **FAST)
    ck = load(s["run_dir"] + "/best.pt")
    assert ck["weights"] == "none" and ck["mode"] == "scratch"
    assert s["trainable_params"] == s["total_params"]


def test_scratch_init_kaiming_differs_from_default():
    torch.manual_seed(0)
    a = models.create_model("resnet18", 2, weights="none", init="kaiming").state_dict()
    torch.manual_seed(0)
    b = models.create_model("resnet18", 2, weights="none", init="xavier").state_dict()
    assert not torch.equal(a["backbone.conv1.weight"], b["backbone.conv1.weight"])


def test_scratch_rejects_imagenet_weights(dataset, tmp_path):
    import pytest
    with pytest.raises(ValueError, match="scratch"):
        train(data=str(dataset), mode="scratch", weights="imagenet", epochs=1, project=str(tmp_path), **FAST)


def test_amp_auto_uses_bf16_on_a_cpu_only_with_amx(monkeypatch):
    # avx512_bf16 without AMX trained 1.5x slower in bf16 than in fp32 (train/precision.py): only AMX earns bf16
    # (and there a training run times both: tests/test_precision.py)
    from transferlearn.train.precision import resolve_amp
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_amp("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_amp("auto", cpu) == "off"
    assert resolve_amp("bf16", cpu) == "bf16" and resolve_amp("off", cpu) == "off"  # stated: as given


def test_compile_keeps_inductor_caches_in_the_cache_folder(tmp_path, monkeypatch):
    # torch.compile's kernels outlive a reboot there (Inductor's own default is under /tmp); a folder the user
    # set in $TORCHINDUCTOR_CACHE_DIR wins. Nothing is compiled until the module is called.
    import os
    from torch._inductor.runtime.cache_dir_utils import cache_dir, default_cache_dir
    from transferlearn.train.loop import compile_module
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # as torch leaves it once it has looked
    compile_module(torch.nn.Linear(2, 2), str(tmp_path))
    assert cache_dir() == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    compile_module(torch.nn.Linear(2, 2), str(tmp_path))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
