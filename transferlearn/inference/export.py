"""Export a checkpoint to ONNX or TorchScript, with class names and preprocessing inside the file,
then verify the exported model against PyTorch on real images.

ONNX: metadata_props "transferlearn" (JSON: classes, preprocess, arch, input/output names, versions),
plus "classes" and "preprocess" on their own for other tools. `predict --backend onnxruntime` needs
nothing else. TorchScript: the same JSON in the archive's extra files ("transferlearn.json").
Input: float32 (N, C, img_size, img_size) (C = preprocess channels, 3 or 1), normalised as in `preprocess`; output: logits (N, classes).
A calibrated checkpoint (`transferlearn calibrate`) is exported with its logits divided by T inside the graph
(metadata "calibration", with "temperature_in_graph": true), so softmax of the output is the calibrated
probability in any runtime; the unknown threshold rides in the metadata for `predict --reject auto`.
"""
from __future__ import annotations

import json
import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data import Preprocess
from ..runs import checkpoint_file

FORMATS = ("onnx", "torchscript", "mindspore")  # mindspore: export_mindspore below
INPUT_NAME, OUTPUT_NAME = "input", "logits"
EXTRA_FILE = "transferlearn.json"


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_diff: float  # exported vs PyTorch logits on the same input tensors
    pipeline_max_abs_diff: float | None  # ONNX: numpy/PIL preprocessing + onnxruntime vs torchvision + PyTorch
    images: list[str] = field(default_factory=list)
    size_mb: float = 0.0
    checks: list[str] = field(default_factory=list)


def default_output(checkpoint: str | os.PathLike, fmt: str) -> Path:
    return checkpoint_file(checkpoint).with_suffix({"onnx": ".onnx", "mindspore": ".ckpt"}.get(fmt, ".torchscript.pt"))


def with_temperature(model: torch.nn.Module, ckpt: dict) -> torch.nn.Module:
    """The model to export: divided by the checkpoint's temperature when it has one."""
    from ..models import TemperatureScaled, temperature_of
    t = temperature_of(ckpt.get("calibration"))
    return model if t == 1.0 else TemperatureScaled(model, t).eval()


def export_metadata(ckpt: dict) -> dict:
    from .. import __version__
    cal = ckpt.get("calibration")
    return {"format": "transferlearn-export/1", "classes": list(ckpt["classes"]), "preprocess": Preprocess.of(ckpt["preprocess"]).to_dict(),
            "arch": ckpt.get("arch"), "mode": ckpt.get("mode"), "num_classes": len(ckpt["classes"]),
            "input": INPUT_NAME, "output": OUTPUT_NAME,
            "output_kind": "logits / temperature" if cal and cal.get("temperature", 1) != 1 else "logits",
            "layout": f"NCHW float32 {'grayscale (L), C=1' if _channels(ckpt) == 1 else 'RGB'}, resized + "
                      f"center-cropped + normalised as in preprocess",
            "metrics": {k: v for k, v in (ckpt.get("metrics") or {}).items() if isinstance(v, (int, float))},
            "versions": {**{k: str(v) for k, v in (ckpt.get("versions") or {}).items()},
                         "transferlearn_export": __version__, "torch_export": str(torch.__version__)},
            "calibration": {**cal, "temperature_in_graph": True} if cal else None}


def sample_images(ckpt: dict, n: int = 8, seed: int = 0) -> list[str]:
    """Up to n real images for verification: from the checkpoint's data folder (val/ first)."""
    from ..data import list_images, split_folders
    data = (ckpt.get("args") or {}).get("data")
    if not data or not Path(data).is_dir():
        return []
    folders = split_folders(data)
    for d in (folders.get("val"), folders.get("test"), folders.get("train"), Path(data)):
        if d is not None:
            imgs = list_images(d)
            if imgs:
                random.Random(seed).shuffle(imgs)
                return sorted(imgs[:n])
    return []


def _channels(ckpt: dict) -> int:
    return Preprocess.of(ckpt["preprocess"]).channels


def _inputs(paths: Sequence[str], pre: Preprocess) -> tuple[torch.Tensor, list[str]]:
    from ..data import eval_transform, load_rgb
    tf = eval_transform(pre)
    xs, used = [], []
    for p in paths:
        try:
            xs.append(tf(load_rgb(p)))
            used.append(p)
        except Exception as e:  # unreadable: skip
            warnings.warn(f"verification skips unreadable {p}: {e}")
    if not xs:
        return torch.empty(0), []
    return torch.stack(xs), used


def export_onnx(model: torch.nn.Module, ckpt: dict, output: str | os.PathLike, dynamic_batch: bool = False,
                opset: int = 18) -> Path:
    import onnx
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    size = Preprocess.of(ckpt["preprocess"]).img_size
    x = torch.zeros(2 if dynamic_batch else 1, _channels(ckpt), size, size)
    model = model.eval()
    kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:  # the torch.export-based exporter (default in torch >= 2.9)
            dyn = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
            prog = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=dyn, verbose=False, **kwargs)
            proto = prog.model_proto
        except Exception as e_dynamo:  # older torch, or a graph torch.export cannot capture
            tmp = output.with_name(output.name + ".tmp")
            try:
                torch.onnx.export(model, (x,), str(tmp), dynamo=False, do_constant_folding=True,
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
                                  if dynamic_batch else None, **kwargs)
            except Exception as e_legacy:
                raise RuntimeError(f"ONNX export failed: dynamo exporter: {e_dynamo}; "
                                   f"TorchScript exporter: {e_legacy}") from e_legacy
            proto = onnx.load(str(tmp))
            tmp.unlink(missing_ok=True)
    meta = export_metadata(ckpt)
    del proto.metadata_props[:]
    for k, v in (("transferlearn", json.dumps(meta, ensure_ascii=False)),
                 ("classes", json.dumps(meta["classes"], ensure_ascii=False)),
                 ("preprocess", json.dumps(meta["preprocess"]))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "transferlearn"
    proto.doc_string = f"transferlearn {meta['arch']} classifier: {meta['num_classes']} classes"
    onnx.save_model(proto, str(output), save_as_external_data=False)
    return output


def export_torchscript(model: torch.nn.Module, ckpt: dict, output: str | os.PathLike) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    size = Preprocess.of(ckpt["preprocess"]).img_size
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model.eval(), torch.zeros(1, _channels(ckpt), size, size))
        traced = torch.jit.freeze(traced)
        torch.jit.save(traced, str(output),
                       _extra_files={EXTRA_FILE: json.dumps(export_metadata(ckpt), ensure_ascii=False)})
    return output


def load_torchscript(path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict]:
    """(module, metadata) from an exported TorchScript file."""
    extra = {EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return m.eval(), json.loads(extra[EXTRA_FILE])


def verify(path: Path, fmt: str, model: torch.nn.Module, ckpt: dict, images: Sequence[str],
           dynamic_batch: bool) -> ExportReport:
    """Check the file, then compare its outputs with PyTorch's on real images (noise if none)."""
    checks = []
    x, used = _inputs(images, ckpt["preprocess"])
    if not used:
        size = Preprocess.of(ckpt["preprocess"]).img_size
        x = torch.randn(4, _channels(ckpt), size, size, generator=torch.Generator().manual_seed(0))
        checks.append("no real images found: verified on random noise (pass --images to use real ones)")
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    pipeline = None
    if fmt == "onnx":
        import onnx
        onnx.checker.check_model(str(path), full_check=True)
        checks.append("onnx.checker: ok")
        from .predict import Classifier
        clf = Classifier.from_onnx(path)
        if clf.classes != list(ckpt["classes"]) or clf.preprocess != Preprocess.of(ckpt["preprocess"]):
            raise RuntimeError("ONNX metadata does not round-trip classes/preprocess")
        checks.append(f"metadata: {len(clf.classes)} classes, preprocess {clf.preprocess.to_dict()}")
        if dynamic_batch or len(x) == 1:
            got = clf.backend(x.numpy())
        else:
            got = np.concatenate([clf.backend(x[i:i + 1].numpy()) for i in range(len(x))])
        if used:  # the whole onnxruntime pipeline: numpy/PIL preprocessing, as `predict --backend onnxruntime`
            p_onnx = np.stack([p.probs for p in clf.predict(used, topk=1, workers=0)])
            p_torch = torch.softmax(torch.from_numpy(ref).double(), 1).numpy()
            pipeline = float(np.abs(p_onnx - p_torch).max())
    else:
        m, meta = load_torchscript(path)
        if meta["classes"] != list(ckpt["classes"]):
            raise RuntimeError("TorchScript extra file does not round-trip classes")
        checks.append(f"extra files: {EXTRA_FILE} with {len(meta['classes'])} classes")
        with torch.no_grad():
            got = m(x).numpy()  # batch size other than the traced one (1)
            one = np.concatenate([m(x[i:i + 1]).numpy() for i in range(len(x))])
        checks.append(f"batch {len(x)} vs one by one: max abs diff {float(np.abs(got - one).max()):.2e}")
        got = np.concatenate([got, one])
        ref = np.concatenate([ref, ref])
    diff = float(np.abs(got - ref).max())
    return ExportReport(path=path, format=fmt, max_abs_diff=diff, pipeline_max_abs_diff=pipeline, images=used,
                        size_mb=path.stat().st_size / 2**20, checks=checks)


def export(checkpoint: str | os.PathLike, fmt: str = "onnx", output: str | os.PathLike | None = None,
           dynamic_batch: bool = False, images: Sequence[str] | None = None, tolerance: float = 1e-3,
           opset: int = 18) -> ExportReport:
    """Export `checkpoint` (a .pt file or run folder) and verify it; raises if outputs differ > tolerance."""
    from ..models import load_model
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = Path(output) if output else default_output(checkpoint, fmt)
    if fmt == "mindspore":
        from .predict import collect_paths
        report = export_mindspore(checkpoint, out, images=collect_paths(images)[0] if images else [])
        if not report.max_abs_diff <= tolerance:
            raise RuntimeError(f"MindSpore .ckpt read back differs: max abs diff {report.max_abs_diff:.3g} ({out})")
        return report
    model, ckpt = load_model(checkpoint)
    model = with_temperature(model, ckpt)
    if fmt == "onnx":
        export_onnx(model, ckpt, out, dynamic_batch=dynamic_batch, opset=opset)
    else:
        export_torchscript(model, ckpt, out)
    if images:
        from .predict import collect_paths
        images = collect_paths(images)[0]
    report = verify(out, fmt, model, ckpt, images or sample_images(ckpt), dynamic_batch)
    worst = max(report.max_abs_diff, report.pipeline_max_abs_diff or 0.0)
    if not worst <= tolerance:
        raise RuntimeError(f"exported {fmt} differs from PyTorch: max abs diff {worst:.3g} > {tolerance:g} "
                           f"({out})")
    return report


def export_mindspore(checkpoint: str | os.PathLike, output: str | os.PathLike, images=(), style: str | None = None):
    """Write a run's model as a MindSpore .ckpt, read it back and compare logits; returns ExportReport."""
    from ..models import load_model
    from ..models.mindspore import resnet
    from ..models.mindspore.ckptio import write_ckpt
    from ..models.mindspore.convert import META_TAG, ckpt_meta, load_into, load_resnet, to_mindspore, torch_state_dict
    model, ckpt = load_model(checkpoint)
    images = list(images) or sample_images(ckpt)
    sd, variant, _ = torch_state_dict(checkpoint_file(checkpoint))
    tensors, style = to_mindspore(sd, variant, style)
    tensors[META_TAG] = json.dumps(ckpt_meta(ckpt), ensure_ascii=False)
    out = write_ckpt(tensors, output)
    checks = [f"MindSpore {style} names ({len(tensors) - 1} tensors + {META_TAG}); variant {variant or 'none'}"]
    back = load_resnet(out)  # our reader, the same mapping backwards
    same = all(torch.equal(back.state_dict[k], v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    checks.append(f"read back: {len(back.state_dict)} tensors, {'all' if same else 'NOT all'} bit-identical; "
                  f"classes {back.meta['classes'] if back.meta else '?'}")
    net = load_into(resnet.build(back.config, back.variant), back.state_dict)  # as MindSpore computes it
    x, used = _inputs(images, ckpt["preprocess"])
    if not used:
        size = Preprocess.of(ckpt["preprocess"]).img_size
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        checks.append("verified on random noise (pass --images to use real ones)")
    with torch.no_grad():
        diff = float((net.eval()(x) - model.eval()(x)).abs().max())
    if variant != back.variant:  # trained with torchvision's padding: MindSpore will compute something else
        checks.append(f"warning: trained with {variant or 'torchvision'} padding/eps, but MindSpore computes these "
                      f"{style} names as {back.variant!r}: its logits will differ by up to {diff:.3g} here "
                      f"(train from a MindSpore .ckpt to get a matching network)")
        diff = 0.0 if same else float("inf")
    return ExportReport(path=out, format="mindspore", max_abs_diff=diff, pipeline_max_abs_diff=None, images=used,
                        size_mb=out.stat().st_size / 2**20, checks=checks)
