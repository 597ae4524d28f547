"""`compare`: the same data, epochs and seed trained in each mode, one table and one plot. A compare run
folder holds one run folder per mode; a killed compare continues with the mode it was in."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import yaml

from ..modes import MODES
from ..runs import claim_run_dir, read_csv, write_csv, write_json, write_yaml
from .config import TrainConfig
from .resume import ResumeError, has_checkpoint, resumed_config
from . import distributed
from .trainer import device_type, train

COMPARISON_COLUMNS = ["mode", "init", "arch", "best_val_acc", "best_epoch", "final_train_acc", "final_val_acc",
                      "train_seconds", "images_per_second", "trainable_params", "run_dir"]


def _resume_compare(folder: Path, given: dict) -> tuple[TrainConfig, list[str], list[str] | None]:
    """(options, modes, inits) of a stopped compare; `given` may change only what a resumed run may."""
    spec = folder / "compare.yaml"
    if not spec.is_file():
        hint = f"; continue a single run with `transferlearn train --resume {folder}`" if has_checkpoint(folder) else ""
        raise ResumeError(f"--resume {folder}: not a compare run folder (no compare.yaml){hint}")
    saved = yaml.safe_load(spec.read_text(encoding="utf-8"))
    return resumed_config({"args": saved["config"]}, given), saved["modes"], saved.get("inits") or None


def compare(cfg: TrainConfig | None = None, modes=MODES, resume: str | None = None, inits=None,
            **overrides) -> dict:
    """Train each mode with the same data, epochs and seed; write comparison.csv and comparison.png.
    `inits` (e.g. kaiming xavier default): each mode once per init scheme, runs named MODE-INIT.
    compare(resume="runs/cmp") continues a compare that was stopped: finished modes are kept, the one in
    progress continues from its last.pt, the rest start."""
    from ..reporting.plots import plot_comparison
    from ..reporting.report import probe_verdict, write_compare_report
    from .callbacks import report
    if resume:
        out_dir = Path(resume)
        cfg, modes, inits = _resume_compare(out_dir, overrides)
    else:
        cfg = TrainConfig(**{**asdict(cfg or TrainConfig()), **overrides})
    ctx = distributed.from_env(device_type(cfg.device), cfg.dist_timeout)
    if not resume:
        out_dir = Path(ctx.broadcast(str(claim_run_dir(cfg.project, cfg.name or "compare", cfg.exist_ok))
                                     if ctx.is_main else None))
        if ctx.is_main:
            write_yaml(out_dir / "compare.yaml", {"modes": list(modes), "inits": list(inits or []),
                                                  "config": asdict(cfg)})
    log = print if ctx.is_main else (lambda *a, **k: None)
    summaries, results = {}, {}
    runs = [(m, i, f"{m}-{i}" if inits else m) for m in modes for i in (inits or [cfg.init])]
    for mode, init, run in runs:
        log(f"\n=== {run} ===", flush=True)
        mode_dir = out_dir / run
        if (mode_dir / "summary.json").is_file() and resume:
            import json
            summaries[run] = json.loads((mode_dir / "summary.json").read_text(encoding="utf-8"))
            log(f"{run} finished earlier: {mode_dir}", flush=True)
        elif resume and has_checkpoint(mode_dir):
            summaries[run] = train(resume=str(mode_dir), **{k: getattr(cfg, k) for k in ("epochs", "quiet")})
        else:
            # user-set weights apply to the pretrained modes; scratch always starts from random init
            weights = None if mode == "scratch" or cfg.weights in (None, "imagenet", "none") else cfg.weights
            # --head-warmup and fine-tuning's BatchNorm and lr options belong to all-layers: the other modes keep
            # their meaning (and their defaults)
            own = {} if mode == "all-layers" else {"head_warmup": None, "bn_eval_epochs": None,
                                                   "backbone_warmup": 0.0, "head_lr_scale": 1.0,
                                                   **({"ema": None} if mode == "last-layer" else {})}
            run_cfg = TrainConfig(**{**asdict(cfg), "mode": mode, "init": init, "weights": weights, **own,
                                     "project": str(out_dir), "name": run, "exist_ok": True, "output": None,
                                     "resume": None})
            summaries[run] = train(run_cfg)
        ctx.barrier()
    modes = [r for _, _, r in runs]
    if not ctx.is_main:
        return {"best_mode": None, "modes": summaries, "dir": str(out_dir)}
    for mode in modes:
        results[mode] = read_csv(Path(summaries[mode]["run_dir"]) / "results.csv")
    write_csv(out_dir / "comparison.csv", [summaries[m] for m in modes], COMPARISON_COLUMNS)
    plot_comparison(results, summaries, out_dir / "comparison.png",
                    title=f"{cfg.arch} on {Path(cfg.data).name}, " + epochs_label(summaries, modes))
    best = max(modes, key=lambda m: summaries[m]["best_val_acc"])
    write_json(out_dir / "summary.json", {"best_mode": best, "modes": summaries})
    report(write_compare_report, out_dir)
    print("\n" + format_comparison(summaries), flush=True)
    print(f"\nwinner: {best} (best val acc {summaries[best]['best_val_acc']:.4f}); "
          f"plots: {out_dir / 'comparison.png'}", flush=True)
    for mode in modes:
        verdict = probe_verdict(mode, summaries[mode])
        if verdict:
            print(verdict, flush=True)
    return {"best_mode": best, "modes": summaries, "dir": str(out_dir)}


def epochs_label(summaries: dict, modes: list[str]) -> str:
    """"10 epochs", or each mode's count where their defaults differ ("last-layer 10, all-layers 5 epochs")."""
    counts = {m: summaries[m].get("epochs_run", summaries[m]["epochs"]) for m in modes}
    if len(set(counts.values())) == 1:
        return f"{next(iter(counts.values()))} epochs"
    return ", ".join(f"{m} {n}" for m, n in counts.items()) + " epochs"


def format_comparison(summaries: dict) -> str:
    lines = ["| mode | best val acc | best epoch | final train acc | train s | img/s |",
             "|---|---|---|---|---|---|"]
    for m, s in summaries.items():
        lines.append(f"| {m} | {s['best_val_acc']:.4f} | {s['best_epoch']} | {s['final_train_acc']:.4f} | "
                     f"{s['train_seconds']:.1f} | {s['images_per_second']:.1f} |")
    return "\n".join(lines)
