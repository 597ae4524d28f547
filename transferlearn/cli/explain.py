"""`transferlearn explain CHECKPOINT IMAGE...`"""
from __future__ import annotations

import sys


def _explain(args) -> int:
    from pathlib import Path

    from transferlearn.inference.explain import Explainer, save_explanation
    from transferlearn.inference.outputs import plot_name
    from transferlearn.inference.predict import collect_paths

    exp = Explainer.load(args.checkpoint, method=args.method, device=args.device, target_layer=args.layer)
    exp.class_index(args.target_class)  # fail early on an unknown class name
    paths, problems = collect_paths(args.images)
    for msg in problems:
        print(f"warning: {msg}", file=sys.stderr)
    if not paths:
        print("error: no images to explain", file=sys.stderr)
        return 2
    out = Path(args.output)
    used: set[str] = set()
    n = 0
    print(f"{args.method} on layer {exp.layer_name}", flush=True)
    for i, p in enumerate(paths):
        try:
            e = exp.explain(p, target_class=args.target_class)
        except (OSError, SyntaxError, ValueError) as err:  # PIL raises these for unreadable files
            if isinstance(err, ValueError) and "target-class" in str(err):
                raise
            print(f"skipping unreadable image {p}: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        dest = out / plot_name(p, i, used)
        save_explanation(e, dest, title=Path(p).name)
        print(f"{p}: {e.class_name} {e.confidence:.3f} (predicted {e.predicted}) -> {dest}", flush=True)
        n += 1
    print(f"{n} heat-map(s) in {out}/")
    return 0 if n else 1


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="CAM heat-maps: where the model looks for a class",
                       description="Grad-CAM, Grad-CAM++, Score-CAM or Eigen-CAM over each image (as the model sees "
                                   "it after resize and center crop), for the predicted class or --target-class. "
                                   "Writes one PNG per image.")
    p.add_argument("checkpoint", help="best.pt or a run folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("--method", choices=["gradcam", "gradcam++", "scorecam", "eigencam"], default="gradcam")
    p.add_argument("--target-class", default=None, metavar="NAME",
                   help="explain this class instead of the predicted one (name or index)")
    p.add_argument("--output", "-o", default="explain", metavar="DIR", help="folder for the PNGs (default: explain)")
    p.add_argument("--layer", default=None, metavar="MODULE",
                   help="target layer, e.g. backbone.layer4 (default: last conv block of the backbone)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_explain, must_exist=("checkpoint",))
