"""What a search leaves in its folder: tune.csv (a row per trial), tune.png, args.yaml (the best trial's options,
for `train --cfg`), summary.json, and the report, which says on which split the options were chosen."""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import TuneError
from ..runs import write_csv, write_json, write_yaml
from ..train.config import TrainConfig
from .space import Param

COLUMNS = ["trial", "state", "value", "best_epoch", "epochs_run", "seconds"]
NOT_REPLAYED = ("project", "name", "exist_ok", "output", "resume", "quiet")  # a replay chooses these itself
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail", "RUNNING": "stopped", "WAITING": "waiting"}


def trial_rows(study, params: dict[str, Param]) -> list[dict]:
    """A row per trial: its state, best val accuracy (a pruned trial's best before it was stopped), values, folder."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        state = "stopped" if a.get("interrupted") else STATES.get(t.state.name, t.state.name.lower())
        value = t.value if t.state.name == "COMPLETE" else max(t.intermediate_values.values(), default=None)
        rows.append({"trial": t.number, "state": state, "value": None if value is None else round(value, 6),
                     "best_epoch": a.get("best_epoch"), "epochs_run": a.get("epochs_run"), "seconds": a.get("seconds"),
                     **{k: t.params.get(k) for k, p in params.items() if p.kind != "fixed"},
                     "defaults": bool(a.get("defaults")), "run_dir": a.get("run_dir"), "error": a.get("error")})
    return rows


def keep_checkpoints(rows: list[dict], keep: set[int]) -> None:
    """best.pt of the trials in `keep` (the best, the defaults) only: a search of 50 trials would hold 50 models."""
    for r in rows:
        if r["trial"] not in keep and r["run_dir"]:
            (Path(r["run_dir"]) / "best.pt").unlink(missing_ok=True)


def evaluate_on_test(row: dict, data: str, folder: Path) -> float | None:
    from ..evaluation.evaluate import evaluate
    ckpt = Path(row["run_dir"]) / "best.pt"
    if not ckpt.is_file():
        return None
    m = evaluate(ckpt, data, split="test", out=folder / "test" / f"trial-{row['trial']:03d}", embed="none",
                 workers=0, report=False, log=lambda msg: None)
    return m["accuracy"]


def write_results(study, cfg: TrainConfig, params: dict[str, Param], folder: Path, split: str, seconds: float,
                  stopped: bool, log=print) -> dict:
    from ..reporting.plots import plot_tune
    rows = trial_rows(study, params)
    searched = [k for k, p in params.items() if p.kind != "fixed"]
    write_csv(folder / "tune.csv", rows, COLUMNS + searched + ["defaults", "run_dir", "error"])
    lr_axis = "lr" if params.get("lr") is not None and params["lr"].log else None
    plot_tune(rows, folder / "tune.png", title=f"tune: {cfg.arch} {cfg.mode} on {Path(cfg.data).name}", param=lr_axis)
    complete = [r for r in rows if r["state"] == "complete"]
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "stopped")}
    head = (f"tune {folder}: {len(rows)} trials ({', '.join(f'{n} {s}' for s, n in counts.items() if n)}) | "
            f"{seconds:.0f}s now, {sum(r['seconds'] or 0 for r in rows):.0f}s in trials")
    if not complete:
        first = next((r for r in rows if r["error"]), None)
        write_json(folder / "summary.json", {"trials": rows, "best_trial": None})
        if stopped:
            log(head + f"\nstopped before a trial finished; continue with: transferlearn tune --resume {folder}")
            return {"dir": str(folder), "best_trial": None, "stopped": True, "trials": rows}
        why = f" the first: trial {first['trial']}: {first['error']}" if first else ""
        raise TuneError(f"no trial of {folder} finished;{why}. Fix that and run the search again")
    best = max(complete, key=lambda r: (r["value"], -r["trial"]))
    defaults = next((r for r in complete if r["defaults"]), None)
    keep_checkpoints(rows, {best["trial"]} | ({defaults["trial"]} if defaults else set()))
    args = yaml.safe_load((Path(best["run_dir"]) / "args.yaml").read_text(encoding="utf-8"))
    write_yaml(folder / "args.yaml", {k: v for k, v in args.items() if k not in NOT_REPLAYED})
    summary = {"dir": str(folder), "split": split, "best_trial": best["trial"], "best_val_acc": best["value"],
               "best_params": {k: best[k] for k in searched}, "best_run_dir": best["run_dir"],
               "defaults_trial": defaults["trial"] if defaults else None,
               "defaults_val_acc": defaults["value"] if defaults else None, "counts": counts,
               "seconds": round(seconds, 1), "trial_seconds": round(sum(r["seconds"] or 0 for r in rows), 1),
               "stopped": stopped}
    lines = [head]
    if defaults:
        lines.append(f"defaults (trial {defaults['trial']}): val acc {defaults['value']:.4f}")
    shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary["best_params"].items())
    lines.append(f"best: trial {best['trial']}, val acc {best['value']:.4f} | {shown}")
    if split == "test":
        summary["test_acc"] = {"best": evaluate_on_test(best, cfg.data, folder),
                               "defaults": evaluate_on_test(defaults, cfg.data, folder) if defaults else None}
        t = summary["test_acc"]
        lines.append(f"on the test split (unseen by the search): best {t['best']:.4f}"
                     + (f", defaults {t['defaults']:.4f}" if t["defaults"] is not None else ""))
    else:
        lines.append("the options were selected on the val split, so the best val acc is optimistic; "
                     "`--split test` also reports the best and the defaults on DATA/test/ (unseen)")
    lines.append(f"files: {folder / 'tune.csv'}, {folder / 'tune.png'}; best options: {folder / 'args.yaml'} "
                 f"(transferlearn train --cfg {folder / 'args.yaml'})")
    if stopped:
        lines.append(f"stopped: the finished trials are kept; continue with: transferlearn tune --resume {folder}")
    write_json(folder / "summary.json", {**summary, "trials": rows})
    log("\n".join(lines))
    return {**summary, "trials": rows}
