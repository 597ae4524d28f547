"""A frozen backbone is a fixed function: run it on the fastest inference engine at hand.

On a CPU that is onnxruntime, in fp32: on EfficientNet-Lite0 at 224 px, one thread, it ran the backbone at
about twice PyTorch eager's fp32 speed on this project's AVX-512 CPU, and at least PyTorch's bf16 autocast speed
(docs/recipe.md), with features within 1e-5 of PyTorch's fp32 ones; on an AVX2-only CPU, where bf16 does not
pay, onnxruntime was measured at 2.6x PyTorch eager (issue #15). The last-layer feature cache and
the all-layers head warm-up compute all their features through `backbone_runner`. The exported graph is kept in
the cache folder, keyed by the backbone's weights, so a second run with the same backbone does not export again.
A backbone that does not export, or no onnxruntime, falls back to PyTorch with a one-line note.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch

from ..models.device import infer

RUNTIMES = ("auto", "torch", "onnxruntime")


def _weights_key(backbone: torch.nn.Module, shape: tuple) -> str:
    h = hashlib.sha256(repr((type(backbone).__name__, shape, torch.__version__)).encode())
    for k, v in backbone.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def export_backbone(backbone: torch.nn.Module, channels: int, folder: Path) -> Path:
    """backbone -> ONNX file (dynamic batch and image size) under `folder`, reused when the weights match."""
    path = folder / f"backbone-{_weights_key(backbone, (channels,))}.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    device = next(backbone.parameters()).device
    model = backbone.eval().cpu()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter: a second or two, where torch.export takes many
            torch.onnx.export(model, (torch.zeros(2, channels, 64, 64),), str(tmp), dynamo=False,
                              do_constant_folding=True, input_names=["x"], output_names=["features"],
                              dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch"}})
    finally:
        model.to(device)
    os.replace(tmp, path)
    return path


class FrozenBackbone:
    """image batch -> float32 CPU features, by onnxruntime where it was set up, else PyTorch.

    The ONNX graph takes any image size; the first batch of each size is also run through PyTorch (two images)
    and onnxruntime is only trusted for that size if they agree, so an op exported for one size only can never
    give wrong features: it falls back to PyTorch."""

    def __init__(self, backbone: torch.nn.Module, device: torch.device, amp: str, session=None, log=print):
        self.backbone, self.device, self.amp, self.session, self.log = backbone, device, amp, session, log
        self.checked: dict[tuple, bool] = {}

    @property
    def engine(self) -> str:
        return "onnxruntime" if self.session is not None else "torch" + (f" {self.amp}" if self.amp != "off" else "")

    def torch(self, x: torch.Tensor, amp: str | None = None) -> torch.Tensor:
        self.backbone.eval()
        return infer(self.backbone, x, self.device, self.amp if amp is None else amp).float().cpu()

    def onnx(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"x": x.float().contiguous().numpy()})[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is not None:
            size = tuple(x.shape[1:])
            if size not in self.checked:
                self.checked[size] = self._agrees(x[:2])
            if self.checked[size]:
                return self.onnx(x)
        return self.torch(x)

    def _agrees(self, x: torch.Tensor) -> bool:
        try:
            a, b = self.onnx(x), self.torch(x, amp="off")
        except Exception as e:
            self.log(f"note: onnxruntime cannot run the backbone at {tuple(x.shape[2:])} px ({type(e).__name__}); "
                     f"PyTorch runs it")
            return False
        ok = a.shape == b.shape and bool((a - b).abs().max() <= 1e-3 * max(1.0, float(b.abs().max())))
        if not ok:
            self.log(f"note: onnxruntime's features differ from PyTorch's at {tuple(x.shape[2:])} px; PyTorch runs it")
        return ok


def backbone_runner(backbone: torch.nn.Module, runtime: str, device: torch.device, amp: str, channels: int,
                    cache_dir: Path, log=print) -> FrozenBackbone:
    """The frozen backbone on `runtime` (auto: onnxruntime on a CPU when installed, else PyTorch)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"--backbone-runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch" or (runtime == "auto" and device.type != "cpu"):
        return FrozenBackbone(backbone, device, amp, log=log)
    why = None
    if device.type != "cpu":
        why = f"onnxruntime runs on the CPU here, and training is on {device}"
    else:
        try:
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = max(torch.get_num_threads(), 1), 1
            so.log_severity_level = 3
            path = export_backbone(backbone, channels, cache_dir / "onnx")
            session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            return FrozenBackbone(backbone, device, amp, session, log=log)
        except ImportError:
            why = "onnxruntime is not installed (pip install onnxruntime)"
        except Exception as e:  # an op the exporter or onnxruntime lacks
            why = f"it did not export to ONNX ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
    if runtime == "onnxruntime" or why.startswith("it did not"):
        log(f"note: the frozen backbone runs in PyTorch: {why}")
    return FrozenBackbone(backbone, device, amp, log=log)
