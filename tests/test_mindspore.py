"""MindSpore .ckpt in and out, checked against files and outputs made by real MindSpore 2.10
(tests/make_mindspore_fixtures.py; MindSpore itself is not installed in CI)."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from transferlearn.cli import main
from transferlearn.mindspore import (MindSporeCheckpointError, apply_variant, build_resnet, load_resnet,
                                     read_ckpt, write_ckpt)
from transferlearn.mindspore.convert import check_fit, load_into, to_mindspore
from transferlearn.mindspore.resnet import SameConv2d, SameMaxPool2d, same_pads

D = Path(__file__).parent / "data" / "mindspore"
NETS = {"zoo_bottleneck": ("modelzoo", "mindspore-same"), "zoo_basic": ("modelzoo", "mindspore-base"),
        "mindcv_bottleneck": ("mindcv", "mindcv"), "mindcv_basic": ("mindcv", "mindcv")}


def rel_diff(got, want) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


# ---------------------------------------------------------------- reader

def test_every_dtype_scalars_and_strings_as_mindspore_saved_them():
    got, want = read_ckpt(D / "dtypes.ckpt"), np.load(D / "dtypes.npz")
    assert got["note"] == "hello 你好"
    for k in want.files:
        t = got[k]
        assert tuple(t.shape) == want[k].shape, k
        arr = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        assert arr.dtype == want[k].dtype and np.array_equal(arr, want[k]), k
    assert got["bf16"].dtype == torch.bfloat16 and got["uint64"].dtype == torch.uint64
    assert got["scalar_f32"].shape == () and float(got["scalar_f32"]) == 2.5


def test_old_spelling_and_tensor_split_over_values():
    got, want = read_ckpt(D / "crafted_old_split.ckpt"), np.load(D / "crafted_old_split.npz")
    assert got["old_u8"].dtype == torch.uint8 and np.array_equal(got["old_u8"].numpy(), want["old_u8"])
    assert np.array_equal(got["split"].numpy(), want["split"])


def test_crc_trailer_checked(tmp_path):
    assert read_ckpt(D / "crc.ckpt")["w"].shape == (3, 4)
    bad = bytearray((D / "crc.ckpt").read_bytes())
    bad[-30] ^= 0xFF  # a byte of the tensor content
    (tmp_path / "bad.ckpt").write_bytes(bytes(bad))
    with pytest.raises(MindSporeCheckpointError, match="CRC32 check failed"):
        read_ckpt(tmp_path / "bad.ckpt")


@pytest.mark.parametrize("name,message", [("encrypted.ckpt", "encrypted MindSpore checkpoint .AES-GCM"),
                                          ("crafted_int4.ckpt", "'Int4', a 4-bit quantised tensor")])
def test_unreadable_files_say_what_they_are(name, message):
    with pytest.raises(MindSporeCheckpointError, match=message):
        read_ckpt(D / name)


def test_damaged_and_foreign_files(tmp_path):
    data = (D / "mindcv_basic.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(MindSporeCheckpointError, match="cut.ckpt"):
        read_ckpt(tmp_path / "cut.ckpt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.ckpt")
    with pytest.raises(MindSporeCheckpointError, match="zip file .a PyTorch"):
        read_ckpt(tmp_path / "model.ckpt")
    (tmp_path / "x.ckpt").write_bytes(b"\x07\x08garbage")
    with pytest.raises(MindSporeCheckpointError, match="not a readable MindSpore .ckpt"):
        read_ckpt(tmp_path / "x.ckpt")


# ---------------------------------------------------------------- mapping and the same function

def test_mapping_drops_optimizer_state_and_bookkeeping():
    w = load_resnet(D / "zoo_bottleneck.ckpt")
    assert (w.style, w.variant) == NETS["zoo_bottleneck"]
    assert {"learning_rate", "global_step", "momentum", "epoch_num", "step_num"} <= set(w.dropped)
    raw = read_ckpt(D / "zoo_bottleneck.ckpt")
    trainable = {k for k in raw if k.endswith((".weight", ".bias", ".gamma", ".beta")) and not k.startswith("moments.")}
    assert {k for k in w.dropped if k.startswith("moments.")} == {"moments." + k for k in trainable}
    assert "layer1.0.downsample.1.running_var" in w.state_dict and "fc.weight" in w.state_dict
    assert not any(k.startswith("moments.") or "gamma" in k for k in w.state_dict)
    assert torch.equal(w.state_dict["layer1.0.downsample.1.running_var"],
                       raw["layer1.0.down_sample_layer.1.moving_variance"])
    assert torch.equal(w.state_dict["fc.bias"], raw["end_point.bias"])
    assert torch.equal(load_resnet(D / "zoo_basic.ckpt").state_dict["layer1.0.bn2.weight"],
                       read_ckpt(D / "zoo_basic.ckpt")["layer1.0.bn2d.gamma"])


@pytest.mark.parametrize("name", list(NETS))
def test_same_features_and_logits_as_mindspore(name):
    w = load_resnet(D / f"{name}.ckpt")
    assert (w.style, w.variant) == NETS[name]
    net = load_into(build_resnet(w.config, w.variant), w.state_dict).eval()
    inputs, want = np.load(D / "inputs.npz"), np.load(D / f"{name}.npz")
    for k in ("even", "odd"):  # 48 px and 45 px: 'same' pads differently for even and odd sizes
        x = torch.from_numpy(inputs[f"x_{k}"])
        with torch.no_grad():
            logits = net(x).numpy()
            fc, net.fc = net.fc, torch.nn.Identity()
            features = net(x).numpy()
            net.fc = fc
        df, dl = rel_diff(features, want[f"features_{k}"]), rel_diff(logits, want[f"logits_{k}"])
        print(f"{name} {k}: max |diff| / max |value|: features {df:.2e}, logits {dl:.2e}")  # shown with -s
        assert df <= 1e-4 and dl <= 1e-4, k
    if name in ("zoo_bottleneck", "mindcv_bottleneck"):  # torchvision's padding is not MindSpore's function
        plain = load_into(build_resnet(w.config, None), w.state_dict).eval()
        with torch.no_grad():
            d = rel_diff(plain(torch.from_numpy(inputs["x_even"])).numpy(), want["logits_even"])
        print(f"{name}: torchvision's padding/eps instead: logits {d:.2e}")
        assert d > 1e-2


def test_same_padding_rule():
    assert same_pads(224, 7, 2) == (2, 3) and same_pads(57, 7, 2) == (3, 3) and same_pads(56, 3, 2) == (0, 1)
    assert same_pads(56, 1, 2) == (0, 0) and same_pads(56, 3, 1) == (1, 1)


def test_missing_and_extra_keys_are_listed():
    w = load_resnet(D / "mindcv_basic.ckpt")
    sd = dict(w.state_dict)
    del sd["layer2.0.conv1.weight"]
    sd["layer9.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(MindSporeCheckpointError, match=r"missing layer2.0.conv1.weight.*unexpected layer9.0.conv1"):
        check_fit("f.ckpt", sd, build_resnet(w.config, w.variant))


def test_extra_entry_in_file_is_an_error(tmp_path):
    params = dict(read_ckpt(D / "zoo_basic.ckpt"))
    params["layer1.0.se.gamma"] = torch.ones(8)
    del params["end_point.weight"], params["end_point.bias"]  # a filtered-out head is fine
    write_ckpt(params, tmp_path / "x.ckpt")
    with pytest.raises(MindSporeCheckpointError, match=r"x.ckpt does not fit .*unexpected layer1.0.se.weight"):
        load_resnet(tmp_path / "x.ckpt")


def test_unknown_network_names_what_is_in_the_file(tmp_path):
    write_ckpt({"encoder.weight": torch.zeros(2, 2), "learning_rate": torch.tensor(0.1)}, tmp_path / "o.ckpt")
    with pytest.raises(MindSporeCheckpointError, match="model-zoo and mindcv ResNets; names in the file: encoder"):
        load_resnet(tmp_path / "o.ckpt")


# ---------------------------------------------------------------- writer

@pytest.mark.parametrize("name", list(NETS))
def test_writer_reproduces_mindspore_files(name, tmp_path):
    """Map to torchvision and back, write: the same tags, types, dims and bytes as MindSpore's own file."""
    w = load_resnet(D / f"{name}.ckpt")
    tensors, style = to_mindspore(w.state_dict, w.variant)
    assert style == NETS[name][0]
    out = write_ckpt(tensors, tmp_path / "ours.ckpt", crc=name == "zoo_basic")
    ours, theirs = read_ckpt(out), read_ckpt(D / f"{name}.ckpt")
    theirs = {k: v for k, v in theirs.items() if k not in w.dropped}
    assert list(ours) == list(tensors) and set(ours) == set(theirs)
    for k, v in theirs.items():
        assert ours[k].dtype == v.dtype and torch.equal(ours[k], v), k


def test_writer_round_trips_every_dtype(tmp_path):
    src = read_ckpt(D / "dtypes.ckpt")
    write_ckpt(src, tmp_path / "d.ckpt", crc=True)
    back = read_ckpt(tmp_path / "d.ckpt")
    assert list(back) == list(src)
    for k, v in src.items():
        assert back[k] == v if isinstance(v, str) else (back[k].dtype == v.dtype and torch.equal(back[k], v)), k


def test_convert_both_ways_never_touching_the_input(tmp_path):
    src = D / "zoo_bottleneck.ckpt"
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    assert main(["convert", str(src), str(tmp_path / "r.pt")]) == 0
    sd = torch.load(tmp_path / "r.pt", weights_only=True)
    w = load_resnet(src)
    load_into(build_resnet(w.config, "mindspore-same"), sd)
    assert main(["convert", str(tmp_path / "r.pt"), str(tmp_path / "r.ckpt"), "--crc"]) == 0
    back = read_ckpt(tmp_path / "r.ckpt")
    orig = read_ckpt(src)
    assert set(back) == set(orig) - set(w.dropped)
    assert all(torch.equal(back[k], orig[k]) for k in back)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    assert main(["convert", str(src), str(src)]) == 2


# ---------------------------------------------------------------- train / load_model / export

@pytest.fixture(scope="module")
def resnet18_ckpt(tmp_path_factory) -> Path:
    """A full-size ResNet18 in model-zoo names (as MindSpore's model zoo names ResNet18: bn1d/bn2d)."""
    import torchvision
    torch.manual_seed(0)
    tensors, _ = to_mindspore(torchvision.models.resnet18().state_dict(), None, "modelzoo")
    tensors["moments.fc.weight"] = torch.zeros(1000, 512)
    return write_ckpt(tensors, tmp_path_factory.mktemp("ms") / "resnet18.ckpt")


def test_create_model_from_ckpt_and_wrong_arch(resnet18_ckpt):
    from transferlearn.models import WeightsError, create_model
    notes = []
    m = create_model("resnet18", 3, weights=str(resnet18_ckpt), log=notes.append)
    assert m.variant == "mindspore-base" and m.head[1].out_features == 3
    assert any("dropped the classifier" in n for n in notes) and any("moments.fc.weight" in n for n in notes)
    raw = read_ckpt(resnet18_ckpt)
    assert torch.equal(m.backbone.layer1[0].bn2.weight,
                       raw["layer1.0.bn2d.gamma"])
    assert m.backbone.layer1[0].bn2.eps == 1e-4 and m.backbone.bn1.eps == 1e-5
    with pytest.raises(WeightsError, match="holds resnet18 .modelzoo names., not resnet50: pass --arch resnet18"):
        create_model("resnet50", 3, weights=str(resnet18_ckpt))
    same = create_model("resnet18", 1000, weights=str(resnet18_ckpt), log=notes.append)  # head kept
    assert torch.equal(same.head[1].weight, raw["end_point.weight"]) and torch.equal(same.head[1].bias,
                                                                                      raw["end_point.bias"])


def test_variant_rebuilds_same_padding():
    from transferlearn.models import create_model
    m = create_model("resnet18", 2, weights="none", variant="mindspore-same")
    assert isinstance(m.backbone.conv1, SameConv2d) and isinstance(m.backbone.maxpool, SameMaxPool2d)
    assert m.backbone.layer2[0].conv1.padding == (0, 0) and m.backbone.bn1.eps == 1e-4
    with pytest.raises(ValueError, match="unknown MindSpore variant"):
        apply_variant(m.backbone, "tf-same")


def test_train_from_ckpt_then_export_and_predict(resnet18_ckpt, dataset, tmp_path, capsys):
    from transferlearn.checkpoint import load_model
    assert main(["train", "--data", str(dataset), "--arch", "resnet18", "--weights", str(resnet18_ckpt),
                 "--mode", "last-layer", "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.001",
                 "--scheduler", "none", "--epochs", "1", "--img-size", "32", "--quiet",
                 "--project", str(tmp_path / "runs"), "--name", "ms"]) == 0
    run = tmp_path / "runs" / "ms"
    model, ckpt = load_model(run)
    assert ckpt["variant"] == "mindspore-base" and model.backbone.layer3[1].bn1.eps == 1e-4
    assert main(["export", str(run), "--format", "mindspore"]) == 0
    assert "max abs diff of logits 0.00e+00" in capsys.readouterr().out
    back = load_resnet(run / "best.ckpt")
    assert back.meta["classes"] == ckpt["classes"] and back.variant == "mindspore-base"
    assert torch.equal(back.state_dict["fc.weight"], ckpt["model"]["head.1.weight"])
    raw = read_ckpt(run / "best.ckpt")
    assert "layer4.1.bn2d.moving_variance" in raw and "end_point.bias" in raw


# ---------------------------------------------------------------- data get canidae (local server)

def test_data_get_canidae_from_local_server(tmp_path, monkeypatch):
    from test_datasets import Server, png_bytes  # the local HTTP server of the data-get tests
    from transferlearn import datasets as ds
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # the lesson's archive layout: data/Canidae/{train,val}/{dogs,wolves}
        for split, n in (("train", 3), ("val", 2)):
            for ci, c in enumerate(("dogs", "wolves")):
                for i in range(n):
                    z.writestr(f"data/Canidae/{split}/{c}/n0{ci}_{i}.JPEG", png_bytes(ci * 7 + i))
    server = Server()
    try:
        server.files["Canidae_data.zip"] = buf.getvalue()
        spec = ds.DATASETS["canidae"]
        assert spec.resources[0].url.endswith("/Canidae_data.zip")
        monkeypatch.setattr(spec, "resources", [ds.Resource(server.url + "Canidae_data.zip", "Canidae_data.zip")])
        assert main(["data", "get", "canidae", str(tmp_path / "data"), "--quiet"]) == 0
    finally:
        server.close()
    out = tmp_path / "data" / "canidae"
    assert sorted(p.name for p in (out / "train").iterdir()) == ["dogs", "wolves"]
    assert len(list((out / "val").rglob("*.JPEG"))) == 4
    assert json.loads((out / ds.SOURCE_FILE).read_text())


def test_export_of_a_torchvision_run_warns_that_mindspore_differs(dataset, tmp_path, capsys):
    assert main(["train", "--data", str(dataset), "--arch", "resnet18", "--mode", "scratch", "--epochs", "1",
                 "--img-size", "32", "--quiet", "--project", str(tmp_path / "runs"), "--name", "tv"]) == 0
    assert main(["export", str(tmp_path / "runs" / "tv"), "--format", "mindspore", "-o", str(tmp_path / "tv.ckpt")]) == 0
    out = capsys.readouterr().out
    assert "all bit-identical" in out and "MindSpore computes these modelzoo names as 'mindspore-base'" in out
