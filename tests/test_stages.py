"""Partial fine-tuning (--freeze-stages) and discriminative learning rates (--layer-decay): a backbone's stages."""
import pytest
import torch

from transferlearn import models
from transferlearn.checkpoint import load
from transferlearn.modes import param_groups, set_train
from transferlearn.train import TrainConfig, train

from conftest import FAST

ARCHS = {"efficientnet_lite0": 8, "mobilenet_v2": 19, "resnet18": 5, "lenet": 4, "timm:resnet18": 5}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_parameter_is_in_exactly_one_stage_in_order(arch):
    m = models.create_model(arch, 3, weights="none")
    st = m.stages()
    assert len(st) == ARCHS[arch]
    ids = [id(p) for g in st for p in g]
    assert len(ids) == len(set(ids)) == len(list(m.backbone.parameters()))
    order = {id(p): i for i, p in enumerate(m.backbone.parameters())}
    firsts = [min(order[id(p)] for p in g) for g in st]
    assert firsts == sorted(firsts)  # input to output


def test_frozen_stages_neither_learn_nor_move_their_batchnorm_statistics():
    torch.manual_seed(0)
    m = models.create_model("efficientnet_lite0", 4, weights="none")
    groups = param_groups(m, "all-layers", 1e-2, freeze_stages=3)
    frozen = {id(p) for g in m.stages()[:3] for p in g}
    assert all(not p.requires_grad for g in m.stages()[:3] for p in g)
    assert all(p.requires_grad for g in m.stages()[3:] for p in g) and all(p.requires_grad for p in m.head.parameters())
    assert not frozen & {id(p) for g in groups for p in g["params"]}
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.AdamW(groups, lr=1e-2)
    set_train(m, "all-layers", freeze_stages=3)
    assert all(not mod.training for mod in m.stage_modules(3)) and m.backbone.blocks[3].training
    loss = torch.nn.functional.cross_entropy(m(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    after = m.state_dict()
    early = [k for k in before if k.startswith(("backbone.conv_stem", "backbone.bn1", "backbone.blocks.0.",
                                                "backbone.blocks.1."))]
    late = [k for k in before if k.startswith("backbone.blocks.5.") and ("running_mean" in k or k.endswith("weight"))]
    assert early and all(torch.equal(before[k], after[k]) for k in early)  # weights and running statistics
    assert late and all(not torch.equal(before[k], after[k]) for k in late)


def test_layer_decay_gives_each_stage_a_geometric_lr_below_the_head():
    m = models.create_model("resnet18", 2, weights="none")
    groups = param_groups(m, "all-layers", 1e-3, layer_decay=0.5)
    assert [g["lr"] for g in groups] == pytest.approx([1e-3 * 0.5 ** k for k in (5, 4, 3, 2, 1)] + [1e-3])
    assert groups[-1]["params"] == list(m.head.parameters())
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    assert len(param_groups(m, "all-layers", 1e-3)) == 1  # d = 1: one group, as before


@pytest.mark.parametrize("opts", [{"freeze_stages": 1}, {"layer_decay": 0.8}])
@pytest.mark.parametrize("mode", ["last-layer", "scratch"])
def test_stage_options_belong_to_all_layers(mode, opts):
    with pytest.raises(ValueError, match="all-layers"):
        TrainConfig(data="x", mode=mode, arch="mobilenet_v2", **opts).resolved()


def test_freezing_every_stage_is_refused_with_the_count(dataset, tmp_path):
    with pytest.raises(ValueError, match="19 stages; freeze at most 18"):
        train(data=str(dataset), mode="all-layers", epochs=1, freeze_stages=19, project=str(tmp_path), **FAST)


def test_resume_with_frozen_stages_and_layer_decay_is_exact(dataset, tmp_path):
    kw = dict(data=str(dataset), mode="all-layers", freeze_stages=6, layer_decay=0.7, scheduler="none",
              project=str(tmp_path), **{**FAST, "amp": "off"})
    a = train(epochs=2, name="a", **kw)
    train(epochs=1, name="b", **kw)
    b = train(resume=str(tmp_path / "b"), epochs=2)
    assert b["resumed"]
    ck = load(b["run_dir"] + "/last.pt")
    wa, wb = load(a["run_dir"] + "/last.pt")["model"], ck["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert len(ck["train_state"]["optimizer"]["param_groups"]) == 19 - 6 + 1  # the trainable stages and the head
