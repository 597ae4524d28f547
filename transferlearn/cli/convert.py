"""`transferlearn convert SRC DST`: MindSpore .ckpt <-> PyTorch state_dict (ResNets)."""
from __future__ import annotations


def _convert(args) -> int:
    from transferlearn.models.mindspore import convert
    convert(args.src, args.dst, style=args.style, crc=args.crc)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert a MindSpore .ckpt to a PyTorch state_dict, or back",
                       description="SRC.ckpt -> DST.pt: a MindSpore model-zoo or mindcv ResNet checkpoint becomes a "
                                   "torchvision-named state_dict (optimiser state and bookkeeping dropped and "
                                   "reported). SRC.pt/.pth (a state_dict or a transferlearn checkpoint) -> DST.ckpt: "
                                   "a file MindSpore's load_checkpoint reads. No MindSpore needed. "
                                   "Details: docs/mindspore.md")
    p.add_argument("src", help="input: .ckpt, or .pt/.pth")
    p.add_argument("dst", help="output: .pt/.pth, or .ckpt (never the input)")
    p.add_argument("--style", choices=["modelzoo", "mindcv"], default=None,
                   help="names to write into a .ckpt (default: the variant's; modelzoo for plain torchvision)")
    p.add_argument("--crc", action="store_true", help="append MindSpore's CRC32 trailer to a written .ckpt")
    p.set_defaults(func=_convert, must_exist=("src",))
