"""Architectures, ImageNet weights (offline and downloaded) and --weights PATH."""
import functools
import hashlib
import http.server
import threading

import pytest
import torch
import torchvision

from transferlearn import models
from transferlearn.models import WeightsError, create_model


@pytest.mark.parametrize("arch", models.list_archs())
def test_every_arch_builds_and_runs(arch):
    m = create_model(arch, 7, weights="none").eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    assert m.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, m.num_features)


def test_offline_weights_load_and_lite0_normalisation():
    spec = models.get_spec("efficientnet_lite0")
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.5, 0.5, 0.5)
    a = create_model("efficientnet_lite0", 2, weights="imagenet").state_dict()
    b = create_model("efficientnet_lite0", 2, weights="imagenet").state_dict()
    assert torch.equal(a["backbone.conv_stem.weight"], b["backbone.conv_stem.weight"])  # loaded, not random
    mb = create_model("mobilenet_v2", 2, weights="imagenet").state_dict()
    assert mb["backbone.features.0.1.running_var"].mean() != 1.0  # real BN statistics


def test_weights_path_drops_mismatched_head(tmp_path):
    net = torchvision.models.resnet18(weights=None)
    torch.save(net.state_dict(), tmp_path / "r18.pth")  # a plain torchvision state_dict, 1000 classes
    notes = []
    m = create_model("resnet18", 5, weights=str(tmp_path / "r18.pth"), log=notes.append)
    assert any("dropped classifier head" in n and "5 classes" in n for n in notes)
    assert torch.equal(m.backbone.conv1.weight, net.conv1.weight)
    # a head that fits is kept
    net.fc = torch.nn.Linear(512, 5)
    torch.save(net.state_dict(), tmp_path / "r18_5.pth")
    m = create_model("resnet18", 5, weights=str(tmp_path / "r18_5.pth"), log=notes.append)
    assert torch.equal(m.head[1].weight, net.fc.weight)


def test_weights_path_missing_key_is_an_error(tmp_path):
    sd = torchvision.models.resnet18(weights=None).state_dict()
    del sd["layer1.0.conv1.weight"]
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="layer1.0.conv1.weight"):
        create_model("resnet18", 5, weights=str(tmp_path / "bad.pth"))
    with pytest.raises(WeightsError, match="no such file"):
        create_model("resnet18", 5, weights=str(tmp_path / "nothing.pth"))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def local_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_resnet_imagenet_download_from_local_server(local_server, tmp_path, monkeypatch):
    root, base = local_server
    net = torchvision.models.resnet18(weights=None)
    tmp = tmp_path / "w.pth"
    torch.save(net.state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    (root / f"resnet18-{digest}.pth").write_bytes(tmp.read_bytes())  # torch.hub checks this hash prefix
    fake = type("W", (), {"url": f"{base}/resnet18-{digest}.pth"})()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(models.get_spec("resnet18"), "load_imagenet", models.torchvision_download(fake))
    m = create_model("resnet18", 3, weights="imagenet")
    assert torch.equal(m.backbone.conv1.weight, net.conv1.weight)
    assert (tmp_path / "torch_home" / "hub" / "checkpoints" / f"resnet18-{digest}.pth").is_file()
    # offline (server gone): a message naming the file to place and the alternatives
    fake_missing = type("W", (), {"url": f"{base}/resnet34-deadbeef.pth"})()
    monkeypatch.setattr(models.get_spec("resnet18"), "load_imagenet", models.torchvision_download(fake_missing))
    with pytest.raises(WeightsError) as e:
        create_model("resnet18", 3, weights="imagenet")
    msg = str(e.value)
    assert "resnet34-deadbeef.pth" in msg and "torch_home" in msg and "efficientnet_lite0" in msg and "--weights" in msg


def test_weights_path_accepts_our_checkpoint(dataset, tmp_path):
    from conftest import FAST
    from transferlearn.trainer import train
    s = train(data=str(dataset), epochs=1, project=str(tmp_path), **FAST)
    best = s["run_dir"] + "/best.pt"
    ck = torch.load(best, weights_only=True)
    notes = []
    m = create_model("mobilenet_v2", 3, weights=best, log=notes.append)  # same classes: head kept
    assert not notes and torch.equal(m.head[1].weight, ck["model"]["head.1.weight"])
    m = create_model("mobilenet_v2", 4, weights=best, log=notes.append)  # 4 classes: head dropped, reported
    assert len(notes) == 2 and "4 classes" in notes[0]
    assert torch.equal(m.backbone.features[0][0].weight, ck["model"]["backbone.features.0.0.weight"])
