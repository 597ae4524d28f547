"""BatchNorm on running statistics folded into its convolution while training (models/bnfold.py): the same network,
parameters, gradients and state_dict as unfolded, only fewer passes over the activations."""
import contextlib
import copy

import pytest
import torch
from torch import nn

from transferlearn.models import create_model
from transferlearn.models.bnfold import folded_batchnorm
from transferlearn.modes import set_train


def _randomise_norms(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t, lo, hi in ((m.running_mean, -1, 1), (m.running_var, 0.5, 2), (m.weight.data, 0.5, 1.5),
                              (m.bias.data, -0.5, 0.5)):
                t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)


@pytest.mark.parametrize("arch,norms", [("efficientnet_lite0", 49), ("mobilenet_v2", 52), ("resnet18", 20)])
def test_folded_network_is_the_same_network(arch, norms):
    torch.manual_seed(0)
    model = create_model(arch, 3, weights="none").double()
    _randomise_norms(model)
    plain = copy.deepcopy(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for m in (model, plain):
        set_train(m, "all-layers", bn_eval=True)
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    with folded_batchnorm(model.backbone, x[:2]) as n:
        assert n == norms  # every BatchNorm of these nets follows a convolution
        assert model.training and model.backbone.training  # the check's eval mode is undone
        assert list(model.state_dict()) == list(plain.state_dict())
        torch.manual_seed(1)
        out = model(x)
        out.square().mean().backward()
        twin = copy.deepcopy(model)  # a copy made while folded computes with its own weights
        with torch.no_grad():
            for p in twin.parameters():
                p.mul_(0.5)
            assert not torch.allclose(twin(x), model(x))
    torch.manual_seed(1)
    ref = plain(x)
    ref.square().mean().backward()
    assert torch.allclose(out, ref, rtol=1e-10, atol=1e-12)
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-8, atol=1e-12), name
    assert all(type(a) is type(b) for a, b in zip(model.modules(), plain.modules()))  # unfolded on leaving
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no statistic moved


class ConvUsedTwice(nn.Module):
    """The convolution's output feeds its BatchNorm and a residual sum: folding would change the sum."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_a_convolution_whose_output_is_used_elsewhere_is_not_folded():
    m = ConvUsedTwice().eval()
    _randomise_norms(m)
    x = torch.randn(2, 4, 8, 8)
    want = m(x)
    with folded_batchnorm(m, x) as n:
        assert n == 0
        assert torch.allclose(m(x), want)


def test_batchnorm_on_batch_statistics_is_not_folded():
    model = create_model("resnet18", 3, weights="none")
    set_train(model, "all-layers")  # BatchNorm in train mode: batch statistics, nothing fixed to fold
    with folded_batchnorm(model.backbone, torch.randn(2, 3, 32, 32)) as n:
        assert n == 0


def test_training_folds_only_the_epochs_on_running_statistics(dataset, tmp_path, monkeypatch):
    import transferlearn.train.loop as loop
    from transferlearn import TrainConfig, train
    seen, real = [], loop.folded_batchnorm

    @contextlib.contextmanager
    def spy(module, x):
        with real(module, x) as n:
            seen.append(n)
            yield n
    monkeypatch.setattr(loop, "folded_batchnorm", spy)
    r = train(TrainConfig(data=str(dataset), mode="all-layers", arch="resnet18", weights="none", epochs=2,
                          head_warmup=0, bn_eval_epochs=1, img_size=32, batch_size=8, project=str(tmp_path),
                          name="r", quiet=True))
    assert seen == [20] and r["epochs_run"] == 2  # epoch 1 on running statistics (folded), epoch 2 on batch ones


class Compiled(nn.Module):
    """Stands for torch.compile's wrapper (which keeps the module as `_orig_mod`) without compiling."""

    def __init__(self, module):
        super().__init__()
        self._orig_mod = module

    def forward(self, x):
        return self._orig_mod(x)


def test_a_compiled_model_is_not_folded(dataset, tmp_path, monkeypatch):
    import transferlearn.train.loop as loop
    import transferlearn.train.trainer as trainer
    from transferlearn import TrainConfig, train
    seen = []
    monkeypatch.setattr(loop, "folded_batchnorm", lambda module, x: seen.append(1))
    monkeypatch.setattr(trainer, "compile_module", lambda module, cache_dir=None: Compiled(module))
    r = train(TrainConfig(data=str(dataset), mode="all-layers", arch="resnet18", weights="none", epochs=1,
                          head_warmup=0, bn_eval_epochs=1, img_size=32, batch_size=8, compile=True,
                          project=str(tmp_path), name="r", quiet=True))
    assert seen == [] and r["epochs_run"] == 1  # torch.compile fuses BatchNorm itself
