"""`transferlearn serve CHECKPOINT`"""
from __future__ import annotations


def _serve(args) -> int:
    from transferlearn.inference.serve import run
    run(args.checkpoint, host=args.host, port=args.port, max_bytes=int(args.max_mb * 1024 * 1024),
        max_pixels=int(args.max_megapixels * 1_000_000), cam_method=args.cam_method, device=args.device,
        tta=args.tta, reject=args.reject, reject_below=args.reject_below)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="web page and JSON API for a trained checkpoint",
                       description="A small web app: drop or pick an image, see the top-5 classes and a CAM "
                                   "heat-map. API: POST /predict (multipart field 'file', or the raw image bytes; "
                                   "?cam=1 adds the heat-map), GET /health, GET /classes. Uploads stay in memory.")
    p.add_argument("checkpoint", help="best.pt or a run folder")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-mb", type=float, default=10.0, help="largest upload accepted, in MB (default 10)")
    p.add_argument("--max-megapixels", type=float, default=40.0,
                   help="largest image accepted, in megapixels (default 40)")
    p.add_argument("--cam-method", choices=["gradcam", "gradcam++", "scorecam", "eigencam"], default="gradcam")
    p.add_argument("--device", default="cpu")
    rej = p.add_mutually_exclusive_group()
    rej.add_argument("--reject", choices=["auto"], default=None,
                     help="answer label 'unknown' below the threshold `transferlearn calibrate` stored (docs/trust.md)")
    rej.add_argument("--reject-below", type=float, default=None, metavar="P",
                     help="answer label 'unknown' when the top (calibrated) probability is below P")
    p.add_argument("--tta", choices=["none", "flip", "5crop"], default="none",
                   help="average the probabilities of the mirror image (flip) or five crops (5crop)")
    p.set_defaults(func=_serve, must_exist=("checkpoint",))
