"""Fine-tuning with BatchNorm on its running statistics, at the cost of the convolutions alone.

With its statistics fixed (`--bn-eval-epochs`, all-layers' default from the probe's head), a BatchNorm layer after a
convolution is a per-channel scale s = gamma / sqrt(var + eps) and shift beta - mean * s, so the two are one
convolution with weight W * s and bias beta - mean * s: the fold every inference engine applies. Here it is applied
while training: each forward computes the folded weight from the trained W, gamma and beta (tensors of kilobytes),
so the parameters, their gradients (by the chain rule through the fold), the optimiser and the state_dict are those of
the unfolded network, and BatchNorm's own passes over the activations, forward and backward, are gone
(the step at 160 px: Lite0 1.22x, MobileNetV2 1.29x as fast; docs/speed.md). A compiled model is left alone:
torch.compile fuses BatchNorm itself.

Only pairs seen in a forward pass are folded: a convolution whose output goes straight into a BatchNorm in eval
mode, both plain `nn.Conv2d` / timm's `Conv2dSame` and `nn.BatchNorm2d` / timm's `BatchNormAct2d`. The folded
network's output is then checked against the unfolded one on the same input; if they differ (a convolution's
output used elsewhere too), nothing is folded.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


def _timm_class(obj, name: str) -> bool:
    cls = type(obj)
    return cls.__name__ == name and cls.__module__.startswith("timm.")


def _conv_ok(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d or _timm_class(m, "Conv2dSame")) and m.padding_mode == "zeros"


def _bn_ok(m: nn.Module) -> bool:
    """A BatchNorm that normalises with its running statistics (eval mode) and has a scale and shift to fold."""
    return (type(m) is nn.BatchNorm2d or _timm_class(m, "BatchNormAct2d")) and not m.training \
        and m.running_mean is not None and m.affine


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    s = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * s
    if conv.bias is not None:
        bias = bias + conv.bias * s
    return conv.weight * s.reshape(-1, 1, 1, 1), bias


def _folded_conv(self, x):
    w, b = _folded(self, self.__dict__["_fold_bn"])
    if self._unfolded is nn.Conv2d:
        return self._conv_forward(x, w, b)
    from timm.layers import conv2d_same  # timm's Conv2dSame (_conv_ok): TF's SAME padding on every call
    return conv2d_same(x, w, b, self.stride, self.padding, self.dilation, self.groups)


def _folded_norm(self, x):  # its scale and shift are in the convolution before it
    if not hasattr(self, "act"):  # nn.BatchNorm2d
        return x
    x = self.drop(x)  # timm's BatchNormAct2d
    if isinstance(self.act, nn.Hardtanh):  # ReLU6: out of place; in place, autograd first copies the tensor
        return F.hardtanh(x, self.act.min_val, self.act.max_val)  # (40 against 75 ms a layer: docs/speed.md)
    return self.act(x)


_SUBCLASSES: dict[type, type] = {}


def _subclass(cls: type, forward) -> type:
    """`cls` with `forward` replaced, made once per class; `_unfolded` leads back to `cls`."""
    if cls not in _SUBCLASSES:
        _SUBCLASSES[cls] = type(f"Folded{cls.__name__}", (cls,), {"forward": forward, "_unfolded": cls})
    return _SUBCLASSES[cls]


def conv_bn_pairs(module: nn.Module, x: torch.Tensor, norms: set) -> list[tuple[nn.Module, nn.Module]]:
    """(conv, BatchNorm) pairs, BatchNorm one of `norms`, where the BatchNorm's input is the convolution's output, in
    one no-grad forward of `module` on `x`."""
    outputs, pairs, hooks = {}, [], []

    def pre(bn, i):
        hit = outputs.get(id(i[0]))
        if hit is not None and hit[1] is i[0] and hit[0].out_channels == bn.num_features:
            pairs.append((hit[0], bn))
    for m in module.modules():
        if _conv_ok(m):
            hooks.append(m.register_forward_hook(lambda c, i, o: outputs.__setitem__(id(o), (c, o))))
        elif m in norms:
            hooks.append(m.register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    return pairs


def fold(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    for conv, bn in pairs:
        conv.__dict__["_fold_bn"] = bn  # not a registered submodule: the state_dict stays the unfolded one's
        conv.__class__ = _subclass(type(conv), _folded_conv)
        bn.__class__ = _subclass(type(bn), _folded_norm)


def unfold(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    for conv, bn in pairs:
        conv.__dict__.pop("_fold_bn", None)
        conv.__class__ = getattr(type(conv), "_unfolded", type(conv))
        bn.__class__ = getattr(type(bn), "_unfolded", type(bn))


@contextlib.contextmanager
def folded_batchnorm(module: nn.Module, x: torch.Tensor, rtol: float = 1e-3):
    """Within the block, every convolution of `module` followed by a BatchNorm in eval mode runs as one folded
    convolution. `x` (a batch of real inputs, a few images are enough) finds the pairs and checks the fold; dropout
    and the like are off for that check and the modules' train/eval modes are restored. Yields the number of
    BatchNorm layers folded (0 when nothing qualified or the check failed)."""
    modes = {m: m.training for m in module.modules()}
    norms = {m for m in module.modules() if _bn_ok(m)}  # on running statistics in the modes training runs them in
    pairs = []
    if norms:
        module.eval()  # dropout and stochastic depth draw nothing, no statistics move
        try:
            with torch.no_grad():
                pairs = conv_bn_pairs(module, x, norms)
                want = module(x)
                fold(pairs)
                got = module(x)
            if not torch.allclose(got.float(), want.float(), rtol=rtol, atol=rtol * float(want.abs().max())):
                unfold(pairs)
                pairs = []
        except BaseException:
            unfold(pairs)
            raise
        finally:
            for m, training in modes.items():
                m.training = training
    try:
        yield len(pairs)
    finally:
        unfold(pairs)
