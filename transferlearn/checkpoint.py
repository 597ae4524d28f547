"""Checkpoints that carry everything needed later, loadable with weights_only=True.

A checkpoint is a plain dict of tensors and primitives: no pickled classes, so loading one
never runs code. Keys: format, model (state_dict), arch, num_classes, classes, preprocess,
mode, epoch, metrics, args, versions; last.pt also holds the training state for resume.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

FORMAT = "transferlearn-checkpoint/1"


def versions() -> dict:
    import torchvision

    from . import __version__
    return {"transferlearn": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": platform.python_version()}


def save(obj: dict, path: str | os.PathLike) -> None:
    """Write atomically: a crash mid-write never leaves a half-written best.pt behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: str | os.PathLike) -> dict:
    path = Path(path)
    if path.is_dir():  # a run folder
        path = path / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found (pass a .pt file or a run folder with best.pt)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a transferlearn checkpoint (no format tag {FORMAT!r}); "
                         f"a bare state_dict can be used with `train --weights {path}`")
    return ckpt


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """(model in eval mode, checkpoint dict) from a checkpoint file or run folder."""
    from .models import create_model

    ckpt = load(path)
    model = create_model(ckpt["arch"], ckpt["num_classes"], weights="none", variant=ckpt.get("variant"))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
