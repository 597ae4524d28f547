"""MindSpore checkpoints in and out: train from a .ckpt, convert files, export a run.

- `load_resnet`: a .ckpt -> torchvision-named state_dict + the variant that computes what MindSpore does.
- `create_from_mindspore`: what `create_model(..., weights="x.ckpt")` calls; the returned model carries
  `.variant`, which the trainer stores in our checkpoint so load_model/predict/export/serve rebuild it.
- `convert`: .ckpt -> PyTorch state_dict and back (a run -> a verified .ckpt: inference/export.py).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import names, resnet
from .ckptio import MindSporeCheckpointError, read_ckpt, write_ckpt

META_TAG = "transferlearn_meta"  # a str entry in the .ckpt we write: classes, preprocess, arch, variant


@dataclass
class MindSporeWeights:
    state_dict: dict  # torchvision names (conv1.weight, bn1.running_mean, layer1.0.downsample.0.weight, fc.*)
    style: str  # "modelzoo" | "mindcv": whose names the file used
    variant: str  # see resnet.VARIANTS
    config: dict  # resnet.infer_config
    dropped: list[str] = field(default_factory=list)  # optimiser state and bookkeeping
    meta: dict | None = None  # what transferlearn wrote into a .ckpt it exported


def load_resnet(path: str | os.PathLike) -> MindSporeWeights:
    """Read a MindSpore model-zoo or mindcv ResNet .ckpt and map it to torchvision's names."""
    params = read_ckpt(path)
    meta = params.get(META_TAG)
    try:
        sd, dropped, style = names.ms_to_torch(params)
        cfg = resnet.infer_config(sd)
    except ValueError as e:
        raise MindSporeCheckpointError(f"{path}: {e}. transferlearn maps MindSpore model-zoo and mindcv ResNets; "
                                       f"names in the file: {_preview(params)}") from e
    with torch.device("meta"):  # shapes only: no memory, no init time
        check_fit(path, sd, resnet.build(cfg, None), ignore=("fc.",))  # a head filtered out is fine
    # what MindSpore computes with these names (for a file we exported, meta["variant"] says what trained it)
    variant = "mindcv" if style == "mindcv" else ("mindspore-same" if cfg["bottleneck"] else "mindspore-base")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            meta = None
    return MindSporeWeights(sd, style, variant, cfg, dropped, meta if isinstance(meta, dict) else None)


def _preview(keys, n: int = 8) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def check_fit(path, sd: dict, net: torch.nn.Module, ignore=("fc.",)) -> None:
    """Every tensor of `net` comes from the file and every tensor of the file goes to `net`."""
    own = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in sd and not k.startswith(ignore)]
    extra = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or extra or wrong:
        raise MindSporeCheckpointError(
            f"{path} does not fit the network: missing {_preview(missing)}; unexpected {_preview(extra)}; "
            f"shape mismatch {_preview(wrong, 4)} (names after mapping to torchvision's)")


def create_from_mindspore(arch: str, num_classes: int, path: str | os.PathLike,
                          log: Callable[[str], None] = print):
    """TransferNet `arch` with the weights of a MindSpore .ckpt, rebuilt as the MindSpore variant."""
    from .. import WeightsError, create_model
    w = load_resnet(path)
    found = resnet.describe(w.config)
    want = resnet.TORCHVISION.get(arch)
    if want is None or any(w.config[k] != v for k, v in want.items()):
        hint = f"pass --arch {found}" if found in resnet.TORCHVISION else "no transferlearn --arch has this shape"
        raise WeightsError(f"--weights {path} holds {found} ({w.style} names), not {arch}: {hint}")
    model = create_model(arch, num_classes, weights="none", variant=w.variant, log=log)
    sd = dict(w.state_dict)
    fc = [k for k in ("fc.weight", "fc.bias") if k in sd]
    if fc and sd["fc.weight"].shape[0] != num_classes:
        log(f"dropped the classifier {'/'.join(fc)} {tuple(sd['fc.weight'].shape)} from {path}: "
            f"{sd['fc.weight'].shape[0]} classes there, {num_classes} here; the new head starts fresh "
            f"(as the lesson's filter_checkpoint_parameter_by_list does)")
        for k in fc:
            del sd[k]
    check_fit(path, {k: v for k, v in sd.items() if not k.startswith("fc.")}, model.backbone)
    state = {"backbone." + k: v for k, v in sd.items() if not k.startswith("fc.")}
    state.update({"head.1." + k[3:]: v for k, v in sd.items() if k.startswith("fc.")})
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("head.") and not k.endswith("num_batches_tracked")]
    if missing or unexpected:  # check_fit should have caught it
        raise WeightsError(f"--weights {path}: missing {missing}, unexpected {unexpected}")
    if w.dropped:
        log(f"{path}: left out {len(w.dropped)} optimiser/bookkeeping entries ({_preview(w.dropped, 5)})")
    log(f"{path}: {found} from MindSpore {w.style} names; built as variant {w.variant!r} "
        f"({_VARIANT_NOTE[w.variant]})")
    return model


_VARIANT_NOTE = {"mindspore-same": "pad_mode='same' convolutions and max-pool, BatchNorm eps 1e-4",
                 "mindspore-base": "BatchNorm eps 1e-4 in the blocks", "mindcv": "pad_mode='same' max-pool"}


def load_into(net: torch.nn.Module, sd: dict, path="weights") -> torch.nn.Module:
    """load_state_dict that tolerates only the counters MindSpore has no equivalent of."""
    check_fit(path, sd, net, ignore=())
    net.load_state_dict(sd, strict=False)
    return net


# ---------------------------------------------------------------- files

def torch_state_dict(path: Path) -> tuple[dict, str | None, dict | None]:
    """(torchvision-named state_dict, variant or None, our checkpoint or None) from a .pt/.pth."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise MindSporeCheckpointError(f"{path} is not a PyTorch file torch.load can read safely ({e})") from e
    ckpt = None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):  # one of our checkpoints
        ckpt, obj = obj, obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise MindSporeCheckpointError(f"{path}: expected a state_dict (name -> tensor) or a transferlearn checkpoint")
    sd = {k.removeprefix("module."): v for k, v in obj.items()}
    if any(k.startswith("backbone.") for k in sd):  # our TransferNet names
        sd = {**{k[9:]: v for k, v in sd.items() if k.startswith("backbone.")},
              **{"fc." + k[7:]: v for k, v in sd.items() if k.startswith("head.1.")}}
    return sd, (ckpt or {}).get("variant"), ckpt


def to_mindspore(sd: dict, variant: str | None, style: str | None = None) -> tuple[dict, str]:
    """MindSpore-named tensors for a torchvision-named ResNet state_dict, and the naming used."""
    style = style or ("mindcv" if variant == "mindcv" else "modelzoo")
    try:
        cfg = resnet.infer_config(sd)
    except ValueError as e:
        raise MindSporeCheckpointError(f"MindSpore export handles ResNets: {e}") from e
    return names.torch_to_ms(sd, style, basic_block_names=not cfg["bottleneck"]), style


def convert(src: str | os.PathLike, dst: str | os.PathLike, style: str | None = None, crc: bool = False,
            log: Callable[[str], None] = print) -> Path:
    """MindSpore .ckpt -> PyTorch state_dict (torchvision names), or a .pt/.pth -> MindSpore .ckpt."""
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise MindSporeCheckpointError(f"{dst}: choose an output other than the input (your file is never changed)")
    if src.suffix.lower() == ".ckpt":
        w = load_resnet(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.contiguous() for k, v in w.state_dict.items()}, dst)
        log(f"wrote {dst}: {len(w.state_dict)} tensors, {resnet.describe(w.config)} in torchvision names "
            f"(from {w.style} names); left out {len(w.dropped)} optimiser/bookkeeping entries"
            f"{' (' + _preview(w.dropped, 4) + ')' if w.dropped else ''}")
        log(f"note: MindSpore computes this network as variant {w.variant!r} ({_VARIANT_NOTE[w.variant]}); "
            f"torchvision's {resnet.describe(w.config)} loads the file but pads/normalises differently. "
            f"To keep MindSpore's function, train from the .ckpt itself (--weights {src.name}), or in Python: "
            f"w = load_resnet('{src.name}'); net = build_resnet(w.config, w.variant) (transferlearn.mindspore)")
        return dst
    if dst.suffix.lower() != ".ckpt":
        raise MindSporeCheckpointError(f"convert: one side must be a MindSpore .ckpt (got {src.name} -> {dst.name})")
    sd, variant, ckpt = torch_state_dict(src)
    tensors, style = to_mindspore(sd, variant, style)
    if ckpt is not None:
        tensors[META_TAG] = json.dumps(ckpt_meta(ckpt), ensure_ascii=False)
    write_ckpt(tensors, dst, crc=crc)
    log(f"wrote {dst}: {len(tensors)} entries in MindSpore {style} names"
        f"{'' if variant else '; the source has torchvision padding, which no MindSpore ResNet uses exactly'}")
    return dst


def ckpt_meta(ckpt: dict) -> dict:
    return {"arch": ckpt.get("arch"), "variant": ckpt.get("variant"), "classes": list(ckpt.get("classes") or []),
            "preprocess": ckpt.get("preprocess"), "mode": ckpt.get("mode")}
