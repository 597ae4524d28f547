"""models/: one head split for every family, the torchvision and timm resolvers (offline), input
channels, init schemes, input-size checks and the errors a user sees for bad names and files."""
from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from transferlearn import models
from transferlearn.models import ModelError, WeightsError, create_model
from transferlearn.modes import apply_mode, set_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# arch, input size for a quick step, the final Linear's in_features, a hidden layer that must stay in the backbone
FAMILIES = [
    ("resnet18", 32, 512, None),
    ("mobilenet_v2", 32, 1280, None),
    ("efficientnet_lite0", 32, 1280, None),
    ("alexnet", 64, 4096, "backbone.classifier.1.weight"),  # 9216 -> 4096 hidden FC
    ("vgg11", 32, 4096, "backbone.classifier.3.weight"),  # torchvision get_model resolver
    ("convnext_tiny", 32, 768, "backbone.classifier.0.weight"),  # its LayerNorm before the Linear
    ("timm:test_vit", 160, 64, "backbone.norm.weight"),  # timm resolver, reset_classifier
]


@pytest.mark.parametrize("arch,size,features,hidden", FAMILIES)
def test_head_split_last_layer_keeps_backbone_bit_identical(arch, size, features, hidden):
    torch.manual_seed(0)
    m = create_model(arch, 4, weights="none", init="default")
    assert m.num_features == features and m.head[1].in_features == features and m.head[1].out_features == 4
    sd = m.state_dict()
    if hidden:
        assert hidden in sd  # hidden classifier layers belong to the backbone
    if arch == "alexnet":
        assert sd["backbone.classifier.1.weight"].shape == (4096, 9216)
    assert not [k for k in sd if k.startswith("backbone.") and sd[k].shape[:1] == (1000,)]  # ImageNet head gone
    params = apply_mode(m, "last-layer")
    assert {id(p) for p in params} == {id(p) for p in m.head.parameters()}
    before = {k: v.clone() for k, v in m.backbone.state_dict().items()}
    opt = torch.optim.SGD(params, lr=0.5)
    set_train(m, "last-layer")
    x, y = torch.randn(4, 3, size, size), torch.tensor([0, 1, 2, 3])
    head_before = m.head[1].weight.clone()
    nn.functional.cross_entropy(m(x), y).backward()
    opt.step()
    assert not torch.equal(m.head[1].weight, head_before)  # the head learned
    after = m.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics untouched


def test_split_head_moves_dropout_and_refuses_non_linear_classifiers():
    vgg = torchvision.models.vgg11(weights=None)
    split = models.split_head(vgg, arch="vgg11")
    assert split.name == "classifier.6" and split.dropout == 0.5
    assert isinstance(vgg.classifier[5], nn.Identity) and isinstance(vgg.classifier[6], nn.Identity)
    with pytest.raises(ModelError, match="final classification Linear"):
        models.split_head(torchvision.models.squeezenet1_0(weights=None), arch="squeezenet1_0")


def test_resolvers_offline_preprocessing_from_weight_metadata():
    s = models.get_spec("convnext_tiny")  # torchvision get_model: resize 236, crop 224 in its Weights.transforms()
    assert s.family == "torchvision" and s.input_size == 224 and math.isclose(s.crop_pct, 224 / 236)
    assert s.load_imagenet is not None and "ConvNeXt_Tiny_Weights" in s.source
    t = models.get_spec("timm:vit_small_patch16_224.augreg_in21k_ft_in1k")  # timm pretrained_cfg
    assert t.family == "timm" and t.mean == (0.5, 0.5, 0.5) and t.interpolation == "bicubic" and t.crop_pct == 0.9
    assert "timm/vit_small_patch16_224.augreg_in21k_ft_in1k" in t.source
    assert models.get_spec("resnet50").crop_pct == 224 / 232  # ResNet50 V2 weights: resize 232


def test_unknown_names_get_close_matches():
    with pytest.raises(ModelError) as e:
        models.get_spec("convnext_tiy")
    assert "convnext_tiny" in str(e.value) and "transferlearn models" in str(e.value)
    with pytest.raises(ModelError, match="timm:vit_small_patch16_224"):
        models.get_spec("timm:vit_smal_patch16_224")


def test_torchvision_resolver_loads_a_file_placed_in_torch_home(tmp_path, monkeypatch):
    """The real torch.hub path: a file already in $TORCH_HOME/hub/checkpoints is used, nothing is downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    w = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT
    net = torchvision.models.mobilenet_v3_small(weights=None)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(net.state_dict(), tmp_path / "hub" / "checkpoints" / w.url.rsplit("/", 1)[1])
    m = create_model("mobilenet_v3_small", 3, weights="imagenet")
    assert torch.equal(m.backbone.features[0][0].weight, net.features[0][0].weight)
    # hidden FC 576 -> 1024 stays in the backbone; only the final Linear is new
    assert torch.equal(m.backbone.classifier[0].weight, net.classifier[0].weight) and m.num_features == 1024


def test_timm_local_file_override_and_offline_error(tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file
    from timm.models import _builder
    net = timm.create_model("test_vit", pretrained=False)
    save_file(net.state_dict(), str(tmp_path / "model.safetensors"))
    m = create_model("timm:test_vit", 3, weights=str(tmp_path / "model.safetensors"))  # timm's file override
    assert torch.equal(m.backbone.patch_embed.proj.weight, net.patch_embed.proj.weight)

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co'")
    monkeypatch.setattr(_builder, "load_state_dict_from_hf", offline)
    monkeypatch.setattr(_builder, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as e:
        create_model("timm:test_vit", 3, weights="imagenet")
    msg = str(e.value)
    assert "models--timm--test_vit.r160_in1k" in msg and "--weights PATH" in msg and "efficientnet_lite0" in msg


def test_timm_without_pretrained_weights_is_a_clear_error():
    with pytest.raises(WeightsError, match="no pretrained weights.*--mode scratch"):
        create_model("timm:convnext_atto_rms", 3, weights="imagenet")


def test_one_channel_sums_pretrained_rgb_kernels(tmp_path):
    net = torchvision.models.resnet18(weights=None)
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    notes = []
    m = create_model("resnet18", 3, weights=str(tmp_path / "r18.pth"), in_channels=1, log=notes.append)
    assert m.backbone.conv1.in_channels == 1
    assert torch.allclose(m.backbone.conv1.weight, net.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(m.backbone.layer1[0].conv1.weight, net.layer1[0].conv1.weight)
    # a grey image x seen by the RGB stem as (x, x, x) gives what the 1-channel stem gives on x
    x = torch.rand(2, 1, 16, 16)
    assert torch.allclose(net.conv1(x.expand(-1, 3, -1, -1)), m.backbone.conv1(x), atol=1e-5)
    rgb = create_model("mobilenet_v2", 3, weights="imagenet")  # the offline ImageNet path
    grey = create_model("mobilenet_v2", 3, weights="imagenet", in_channels=1)
    assert torch.allclose(grey.backbone.features[0][0].weight, rgb.backbone.features[0][0].weight.sum(1, keepdim=True))
    t = create_model("timm:test_vit", 3, weights="none", in_channels=1)
    assert t.backbone.patch_embed.proj.in_channels == 1 and t(torch.randn(1, 1, 160, 160)).shape == (1, 3)
    with pytest.raises(ModelError, match="--in-channels 2"):
        create_model("lenet", 3, weights="none", in_channels=2)


def test_lenet_is_lenet5_and_runs_at_28_and_32():
    m = create_model("lenet", 10, weights="none")
    conv1 = m.backbone.features[0]
    assert (conv1.out_channels, conv1.kernel_size, conv1.padding) == (6, (5, 5), (2, 2))
    assert m.backbone.features[3].out_channels == 16 and m.num_features == 84
    for size in (28, 32):
        assert m(torch.randn(2, 3, size, size)).shape == (2, 10)
    assert sum(p.numel() for p in create_model("lenet", 10, weights="none", in_channels=1).parameters()) == 61706


def test_input_size_errors_name_the_minimum():
    with pytest.raises(ModelError, match="at least 63 px"):
        create_model("alexnet", 10, weights="none", img_size=32)
    with pytest.raises(ModelError, match="exactly 224 px.*fixed-size"):
        create_model("timm:vit_small_patch16_224", 10, weights="none", img_size=32)
    create_model("resnet18", 10, weights="none", img_size=28)  # adaptive pooling: fine


def _std(t):
    return t.float().std().item()


def test_init_schemes_change_what_they_claim():
    def build(init):
        torch.manual_seed(0)
        return create_model("lenet", 10, weights="none", init=init)
    k, x, n, d = build("kaiming"), build("xavier"), build("normal"), build("default")
    conv2, fc1 = "backbone.features.3.weight", "backbone.classifier.1.weight"  # 16x6x5x5, 120x400
    ks, xs, ns = k.state_dict(), x.state_dict(), n.state_dict()
    assert abs(_std(ks[conv2]) / math.sqrt(2 / (16 * 25)) - 1) < 0.1  # fan_out
    assert abs(_std(ks[fc1]) / math.sqrt(2 / 400) - 1) < 0.05  # fan_in
    for key, fan_in, fan_out in ((conv2, 6 * 25, 16 * 25), (fc1, 400, 120)):
        a = math.sqrt(6 / (fan_in + fan_out))
        assert xs[key].abs().max() <= a and xs[key].abs().max() > 0.95 * a
    assert abs(_std(ns[fc1]) / 0.01 - 1) < 0.05 and abs(_std(ns[conv2]) / 0.01 - 1) < 0.1
    for sd in (ks, xs, ns):
        assert all(not sd[b].any() for b in sd if b.endswith("bias"))  # biases zeroed
        assert sd["head.1.bias"].abs().sum() == 0
    assert abs(_std(ks["head.1.weight"]) / math.sqrt(2 / 84) - 1) < 0.15  # the new head is initialised too
    torch.manual_seed(0)
    ref = models.LeNet5(1000)  # default: the library's own init, untouched
    assert torch.equal(d.state_dict()["backbone.features.0.weight"], ref.features[0].weight)
    assert d.state_dict()["backbone.features.0.bias"].any()
    with pytest.raises(ModelError, match="unknown --init"):
        create_model("lenet", 10, weights="none", init="he")


def test_wrong_weights_file_for_the_arch(tmp_path):
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), tmp_path / "mnv2.pth")
    with pytest.raises(WeightsError, match="does not fit --arch resnet18"):
        create_model("resnet18", 3, weights=str(tmp_path / "mnv2.pth"))
    torch.save(create_model("lenet", 10, weights="none").state_dict(), tmp_path / "lenet.pth")
    with pytest.raises(WeightsError, match="does not fit --arch alexnet"):
        create_model("alexnet", 10, weights=str(tmp_path / "lenet.pth"))


def test_cli_bad_input_is_one_line_no_traceback(dataset, tmp_path, capsys):
    from transferlearn.cli import main
    base = ["train", "--data", str(dataset), "--epochs", "1", "--project", str(tmp_path), "--quiet"]
    cases = [(["--arch", "resnt18"], "Did you mean: resnet18"),
             (["--arch", "lenet", "--in-channels", "2"], "--in-channels 2"),
             (["--arch", "timm:convnext_atto_rms", "--weights", "imagenet"], "no pretrained weights"),
             (["--arch", "alexnet", "--mode", "scratch", "--img-size", "32"], "at least 63 px")]
    for extra, words in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err


def test_models_command_lists_sources_and_offline(capsys):
    from transferlearn.cli import main
    assert main(["models", "lenet"]) == 0
    out = capsys.readouterr().out
    assert "lenet" in out and "0.1M" in out and "resnet18 " not in out
    assert main(["models", "timm:test_vit*", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert "timm:test_vit.r160_in1k" in out and "Hugging Face" in out


def test_fixed_size_models_train_at_their_size_and_errors_name_the_option():
    from transferlearn.train import TrainConfig
    c = TrainConfig(data="x", mode="all-layers", arch="timm:vit_small_patch16_224").resolved()
    assert c.img_size == 224 and c.train_size == 224  # not the 5/7 training crop a fixed-size ViT cannot take
    with pytest.raises(ModelError, match="needs --train-size exactly 224"):
        create_model("timm:vit_small_patch16_224", 3, weights="none", img_size=(224, 160))


def test_googlenet_aux_heads_dropped_and_its_weights_file_loads(tmp_path):
    """torchvision's GoogLeNet returns (logits, aux) in training mode; the aux heads go, a file with them loads."""
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    torch.save(net.state_dict(), tmp_path / "g.pth")
    m = create_model("googlenet", 3, weights=str(tmp_path / "g.pth")).train()
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    assert torch.equal(m.backbone.conv1.conv.weight, net.conv1.conv.weight)
    assert not any(".aux" in k for k in m.state_dict()) and models.get_spec("googlenet").mean == (0.5, 0.5, 0.5)
