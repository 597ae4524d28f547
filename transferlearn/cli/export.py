"""`transferlearn export CHECKPOINT --format onnx|torchscript|mindspore`"""
from __future__ import annotations

import sys


def _export(args) -> int:
    import time

    from transferlearn.inference.export import export
    t0 = time.perf_counter()
    try:
        r = export(args.checkpoint, args.format, args.output, dynamic_batch=args.dynamic_batch,
                   images=args.images, tolerance=args.tolerance, opset=args.opset)
    except RuntimeError as e:  # export failed, or the exported model does not match PyTorch
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {r.path} ({r.format}, {r.size_mb:.1f} MB) in {time.perf_counter() - t0:.1f}s")
    for c in r.checks:
        print(f"  {c}")
    src = f"{len(r.images)} real image(s)" if r.images else "random noise"
    if r.format == "mindspore":
        print(f"  read back and rebuilt, vs the checkpoint on {src}: max abs diff of logits {r.max_abs_diff:.2e}")
        return 0
    print(f"  parity vs PyTorch on {src}: max abs diff of logits {r.max_abs_diff:.2e} (tolerance {args.tolerance:g})")
    if r.pipeline_max_abs_diff is not None:
        print(f"  full pipeline (numpy/PIL preprocessing + onnxruntime) vs PyTorch: "
              f"max abs diff of probabilities {r.pipeline_max_abs_diff:.2e}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX or TorchScript and verify it",
                       description="Write the model with its class names and preprocessing inside the file "
                                   "(ONNX metadata_props / TorchScript extra files), then check it and compare "
                                   "its outputs with PyTorch's on real images from the training data folder.")
    p.add_argument("checkpoint", help="best.pt or a run folder")
    p.add_argument("--format", choices=["onnx", "torchscript", "mindspore"], default="onnx",
                   help="mindspore: a .ckpt MindSpore's load_checkpoint reads (ResNets; docs/mindspore.md)")
    p.add_argument("--output", "-o", default=None,
                   help="output file (default: beside the checkpoint, best.onnx / best.torchscript.pt)")
    p.add_argument("--dynamic-batch", action="store_true", help="ONNX: any batch size (default: batch 1)")
    p.add_argument("--images", nargs="+", default=None, metavar="PATH",
                   help="images for the parity check (default: up to 8 from the checkpoint's data folder)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max abs difference allowed (default 1e-3)")
    p.add_argument("--opset", type=int, default=18)
    p.set_defaults(func=_export, must_exist=("checkpoint",))
