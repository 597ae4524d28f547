"""`transferlearn calibrate RUN`: fit the temperature and the "unknown" threshold on the val split."""
from __future__ import annotations

SCORES = ("energy", "msp", "maxlogit")  # models.trust.SCORES, repeated here so --help imports no torch


def _calibrate(args) -> int:
    from transferlearn.evaluation.calibrate import calibrate
    calibrate(args.checkpoint, args.data, score_kind=args.score, coverage=args.coverage, batch_size=args.batch_size,
              workers=args.workers, device=args.device)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="calibrated confidences (temperature scaling) and an 'unknown' threshold",
                       description="Fit one temperature T on the val split (L-BFGS on the log-loss, Guo et al. "
                                   "2017) so that confidences match accuracy, and the score threshold that keeps "
                                   "--coverage of the val images, for predict/serve --reject auto. Both are "
                                   "stored in the checkpoint (predict, serve and export use T from then on); "
                                   "calibration.json and reliability.png go to the run folder. Docs: docs/trust.md.")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN", help="a .pt checkpoint or a run folder (uses best.pt)")
    p.add_argument("--data", default=None,
                   help="dataset root or val folder (default: the folder the run was trained on; its val split)")
    p.add_argument("--score", choices=SCORES, default="energy",
                   help="what --reject auto thresholds: energy (logsumexp of the calibrated logits; default), "
                        "msp (max probability) or maxlogit")
    p.add_argument("--coverage", type=float, default=0.95,
                   help="share of val images --reject auto keeps (default 0.95)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", default="auto", help="data loader processes (auto: one per CPU core, max 8)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=_calibrate, must_exist=("checkpoint", "data"))
