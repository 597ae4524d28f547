"""Names -> ArchSpec. Three sources, in order: our registry (`zoo.ARCHS`); any other classification
model torchvision's `get_model` knows (`convnext_tiny`, `vit_b_16`, `vgg16` ...); and `timm:NAME` via
`timm.create_model`. Preprocessing comes from each library's weight metadata, so nothing here is a
hand-kept table. An unknown name gets difflib's close matches.
"""
from __future__ import annotations

import difflib
from functools import lru_cache

from .core import ArchSpec, ModelError
from .weights import timm_download, torchvision_download
from .zoo import ARCHS, torchvision_preprocess

TIMM_PREFIX = "timm:"


@lru_cache(maxsize=1)
def torchvision_names() -> tuple[str, ...]:
    """Classification models only (not detection/segmentation/video), as torchvision lists them."""
    import torchvision.models as tvm
    return tuple(tvm.list_models(module=tvm))


def _torchvision_spec(name: str) -> ArchSpec:
    import torchvision.models as tvm
    weights = tvm.get_model_weights(name).DEFAULT
    pre = torchvision_preprocess(weights)
    if name in ("googlenet", "inception_v3"):
        # their ImageNet weights expect (x - 0.5) / 0.5 (torchvision's transform_input=True re-normalises
        # ImageNet-normalised input to that); normalising so directly keeps one model for training and loading
        pre.update(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return ArchSpec(name=name, build=lambda: tvm.get_model(name, weights=None),
                    load_imagenet=torchvision_download(weights),
                    source=f"torchvision {weights} (torch.hub download)", family="torchvision",
                    extra={"params": weights.meta.get("num_params"), "url": weights.url}, **pre)


def _timm_spec(arch: str) -> ArchSpec:
    import timm
    from timm.models import get_pretrained_cfg, is_model, split_model_name_tag
    name = arch[len(TIMM_PREFIX):]
    base, _tag = split_model_name_tag(name)
    if not is_model(base):
        raise ModelError(_unknown(arch, [TIMM_PREFIX + n for n in timm.list_models()]))
    cfg = get_pretrained_cfg(name, allow_unregistered=True)  # the default tag when none is given
    cfg = cfg.to_dict() if cfg is not None else {}
    has_weights = bool(cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file"))

    def build():
        return timm.create_model(name, pretrained=False)

    size = cfg.get("input_size", (3, 224, 224))
    return ArchSpec(name=arch, build=build, mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                    std=tuple(cfg.get("std", (0.229, 0.224, 0.225))), input_size=int(size[-1]),
                    crop_pct=float(cfg.get("crop_pct", 0.875)), interpolation=cfg.get("interpolation", "bilinear"),
                    load_imagenet=timm_download if has_weights else None, family="timm",
                    source=(f"timm {cfg.get('hf_hub_id') or cfg.get('url')} (Hugging Face hub download)"
                            if has_weights else "none (timm has no pretrained weights for it)"),
                    extra={"first_conv": cfg.get("first_conv"), "fixed_input_size": cfg.get("fixed_input_size", False)})


def _unknown(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (f"unknown --arch {name!r}.{hint} `transferlearn models [PATTERN]` lists what --arch accepts: "
            f"our {', '.join(ARCHS)}, any torchvision classification model by name, and timm:NAME for timm's.")


_RESOLVED: dict[str, ArchSpec] = {}


def get_spec(arch: str) -> ArchSpec:
    """The ArchSpec for `arch`: ours, torchvision's, or timm:NAME; ModelError with close matches otherwise."""
    if arch in ARCHS:
        return ARCHS[arch]
    if arch in _RESOLVED:
        return _RESOLVED[arch]
    if arch.startswith(TIMM_PREFIX):
        spec = _timm_spec(arch)
    elif arch in torchvision_names():
        spec = _torchvision_spec(arch)
    else:
        raise ModelError(_unknown(arch, list(ARCHS) + list(torchvision_names())
                                  + ([TIMM_PREFIX + n for n in _timm_names()] if len(arch) > 3 else [])))
    _RESOLVED[arch] = spec
    return spec


def _timm_names() -> list[str]:
    try:
        import timm
        return timm.list_models()
    except ImportError:  # pragma: no cover
        return []


def list_archs() -> list[str]:
    """Our registered architectures (the short list; `catalogue` has everything --arch accepts)."""
    return sorted(ARCHS)


def _params(build) -> int | None:
    """Parameter count without allocating memory (built on the meta device)."""
    import torch
    try:
        with torch.device("meta"):
            return sum(p.numel() for p in build().parameters())
    except Exception:  # pragma: no cover - a model that cannot be built on meta
        return None


def _cached(url: str) -> bool:
    """True when torch.hub's cache already holds the file (then it works offline)."""
    import os

    import torch
    return os.path.isfile(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url)))


def catalogue(pattern: str | None = None, pretrained: bool = False, max_counted: int = 60) -> list[dict]:
    """Rows for `transferlearn models`: name, library, parameters, default input size, where ImageNet
    weights come from and whether that works offline. `pattern`: a substring or fnmatch pattern
    (`*convnext*`); timm's ~1,400 names are listed only for a pattern starting with timm:. `pretrained`
    keeps names with ImageNet weights. Parameters are counted for at most `max_counted` timm rows."""
    import fnmatch
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*" if not pattern.startswith(TIMM_PREFIX) else f"{pattern}*"
    keep = (lambda n: True) if not pattern else (lambda n: fnmatch.fnmatch(n, pattern))
    rows = []
    for n, s in ARCHS.items():
        if keep(n):
            rows.append({"name": n, "library": "transferlearn", "params": _params(s.build),
                         "input_size": s.input_size, "weights": s.source if s.load_imagenet else "none",
                         "offline": bool(s.offline) or ("url" in s.extra and _cached(s.extra["url"]))})
    for n in torchvision_names():
        if n not in ARCHS and keep(n):
            s = get_spec(n)
            rows.append({"name": n, "library": "torchvision", "params": s.extra.get("params"),
                         "input_size": s.input_size, "weights": s.source, "offline": _cached(s.extra["url"])})
    if pattern and pattern.startswith(TIMM_PREFIX):
        import timm
        names = timm.list_models(pattern[len(TIMM_PREFIX):], pretrained=pretrained)
        for n in names:
            s = get_spec(TIMM_PREFIX + n)
            rows.append({"name": TIMM_PREFIX + n, "library": "timm",
                         "params": _params(s.build) if len(names) <= max_counted else None,
                         "input_size": s.input_size, "weights": s.source if s.load_imagenet else "none",
                         "offline": False})
    if pretrained:
        rows = [r for r in rows if r["weights"] != "none" and not r["weights"].startswith("none")]
    return rows
