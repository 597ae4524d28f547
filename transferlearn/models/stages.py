"""A backbone's stages, input to output: what `--freeze-stages` freezes and `--layer-decay` scales.

timm models say where their stages are (`group_matcher(coarse=True)`: the stem, each block stage, the last
stage with the final conv), and timm's own `group_modules` reads it, as its layer-wise lr decay does. Other
networks (torchvision's, ours) are split by their structure: a run of single layers (conv, bn, relu) is one
stage, and each block of a Sequential of blocks (ResNet's layer1..4 as wholes, MobileNetV2's `features`
block by block) is one.
"""
from __future__ import annotations

from torch import nn


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def _is_leaf(m: nn.Module) -> bool:
    return not any(True for _ in m.children())


def _is_block_list(m: nn.Module) -> bool:
    """A Sequential/ModuleList of several parameterised blocks (MobileNetV2's `features`)."""
    return isinstance(m, (nn.Sequential, nn.ModuleList)) and sum(
        _has_params(c) and not _is_leaf(c) for c in m.children()) > 1


def _layers(prefix: str, seq: nn.Module) -> list[list[str]]:
    """A Sequential of single layers (LeNet's, AlexNet's `features`): a stage starts at each conv or linear."""
    out: list[list[str]] = []
    for n, c in seq.named_children():
        if isinstance(c, (nn.Conv2d, nn.Linear)) or not out:
            out.append([])
        if _has_params(c):
            out[-1].append(f"{prefix}{n}")
    return [g for g in out if g]


def _structural(backbone: nn.Module) -> list[list[str]]:
    children = [(n, c) for n, c in backbone.named_children() if _has_params(c)]
    lists = [n for n, c in children if _is_block_list(c)]
    out: list[list[str]] = []
    run: list[str] = []  # consecutive single layers: one stage (a stem's conv + bn)
    for name, child in children:
        if _is_leaf(child):
            run.append(name)
            continue
        if run:
            out.append(run)
            run = []
        if lists == [name]:  # the one list of blocks (MobileNetV2's features): a stage per block
            out.extend([f"{name}.{n}"] for n, c in child.named_children() if _has_params(c))
        elif isinstance(child, nn.Sequential) and all(_is_leaf(c) for c in child.children()):
            out.extend(_layers(f"{name}.", child))
        else:  # ResNet's layer1..4: each a stage
            out.append([name])
    if run:  # trailing single layers (a final conv/bn) belong to the last stage
        if out:
            out[-1].extend(run)
        else:
            out.append(run)
    return out


def stage_names(backbone: nn.Module) -> list[list[str]]:
    """Module name prefixes of each stage, input to output."""
    matcher = getattr(backbone, "group_matcher", None)
    if callable(matcher):
        try:
            from timm.models import group_modules
            groups = group_modules(backbone, matcher(coarse=True))
            return [list(v) for _, v in sorted(groups.items())]
        except Exception:  # a timm model whose matcher does not fit its modules: the structure decides
            pass
    return _structural(backbone)


def stages(backbone: nn.Module) -> list[list[nn.Parameter]]:
    """The backbone's parameters by stage, input to output; every parameter is in exactly one (any that no
    stage claims, such as a loose scale or position embedding, goes with the last)."""
    groups = stage_names(backbone)
    out: list[list[nn.Parameter]] = [[] for _ in groups] or [[]]
    for n, p in backbone.named_parameters():
        i = next((i for i, prefixes in enumerate(groups) if any(n == q or n.startswith(q + ".") for q in prefixes)),
                 len(out) - 1)
        out[i].append(p)
    return [ps for ps in out if ps]


def stage_modules(backbone: nn.Module, k: int) -> list[nn.Module]:
    """The modules of the first `k` stages (for putting their BatchNorm in eval mode)."""
    names = [q for prefixes in stage_names(backbone)[:k] for q in prefixes]
    mods = dict(backbone.named_modules())
    return [mods[q] for q in names if q in mods]
