"""docs/benchmarks.md's tables, made from bench/results/ so that the page and the numbers cannot drift.

    python bench/report.py            # print the page with every table filled in from the result files
    python bench/report.py --write    # rewrite docs/benchmarks.md with it, and README.md's table

The page's prose is kept as written; what lies between `<!-- report:NAME -->` and `<!-- /report:NAME -->` is
replaced by block NAME below. tests/test_benchmarks_page.py fails when the committed page is not what this prints.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling scripts, when imported from a test

import resultfile  # noqa: E402
from benchmark import format_table  # noqa: E402
from peers import (TUTORIAL, TUTORIAL_EPOCHS, full_tutorial, kept_tutorial, slowed_note,  # noqa: E402
                   time_to_target_table)

PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
README = PAGE.parent.parent / "README.md"  # its time-to-accuracy table is block readme-time
BLOCK = re.compile(r"(<!-- report:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /report:(?P=name) -->)", re.S)


def rel(path: Path) -> str:
    return path.relative_to(resultfile.RESULTS.parent.parent).as_posix()


def heading(path: Path, raw: dict) -> list[str]:
    m = raw["machine"]
    lines = [f"**`{rel(path)}`**: {resultfile.describe(m)}.", "", f"`{m['command']}`", ""]
    own = m.get("placeholders", {})
    if own:
        lines += ["; ".join(f"`{k}`: {v}" for k, v in own.items()) + ".", ""]
    if m.get("notes"):
        lines += [m["notes"][0].upper() + m["notes"][1:] + ".", ""]
    if m.get("transcribed"):
        lines += [f"Transcribed from {m['source']}; the raw output was not kept, the command measures it again.", ""]
    return lines


def runs_table(results: list[dict], kept: dict | None = None) -> list[str]:
    """Every run in a peers file: its loop time against the tutorial's 25 epochs (measured, in this file or kept
    in another of the same CPU kind, or one timed epoch multiplied out), and its val acc at each evaluation."""
    tut = full_tutorial(results) or kept or next((r for r in results if r["tool"] == TUTORIAL), None)
    tut25 = tut["loop_seconds"] / tut["epochs"] * TUTORIAL_EPOCHS if tut else None
    lines = ["| tool | options | process s | loop s | tutorial's 25 epochs' loop s / this loop s | "
             "val acc per evaluation |", "|---|---|---|---|---|---|"]
    for r in results:
        loop = r["loop_seconds"]
        ratio = "-" if r is tut or not (tut25 and loop) else f"{tut25 / loop:.1f}x" + (
            "" if tut["epochs"] == TUTORIAL_EPOCHS else " (extrapolated)")
        curve = " ".join(f"{a:.3f}".lstrip("0") for _, a in r["curve"])
        lines.append(f"| {r['tool']} | {r.get('options') or '-'} | {r['process_seconds']:.1f} | "
                     f"{'-' if loop is None else f'{loop:.1f}'} | {ratio} | {curve} |")
    return lines


def peers_block(dataset: str) -> str:
    out = []
    for path in resultfile.all_results(f"peers*_{dataset}_*.json"):
        raw = resultfile.load(path)
        kept = kept_tutorial(path)
        out += heading(path, raw)
        out += [time_to_target_table(raw["results"], kept), ""]
        out += runs_table(raw["results"], kept and kept[1]) + [""]
    return "\n".join(out)


# The runs the headline tables show, per dataset: one CPU kind each, since times are only comparable on one CPU; the
# tutorial's 25 epochs are the ones kept in that folder (peers.kept_tutorial). Of our runs only the defaults are shown,
# named by the defaults they ran (ERAS).
HEADLINE = {
    "hymenoptera": ("avx512-amx", ["peers-fold_hymenoptera_lite0.json", "peers-ema1_hymenoptera_lite0.json",
                                   "peers-lpft_hymenoptera_lite0.json", "peers_hymenoptera_lite0.json"]),
    "flowers": ("avx512-amx", ["peers-fold_flowers_lite0.json", "peers-ema1_flowers_lite0.json",
                               "peers-lpft_flowers_lite0.json", "peers_flowers_lite0.json",
                               "peers-fastai_flowers_lite0.json", "peers-timm_flowers_lite0.json"]),
    "fmnist224": ("avx512-amx", ["peers-fold_fmnist224_lite0.json", "peers-ema1_fmnist224_lite0.json",
                                 "peers-lpft_fmnist224_lite0.json", "peers_fmnist224_lite0.json",
                                 "peers-others_fmnist224_lite0.json"]),
}
# all-layers' defaults for EfficientNet-Lite0 over time, oldest first: (first date, the options that spell them out on
# the code before them, the row's name, the result files' name prefix where only the code changed). A "(defaults)" row
# is of the last era its file's date falls in; a row whose options spell out an era's defaults is of that era, whatever
# its date, and of the newest such era whose prefix its file name has. Both switches came on 2026-12-05, the moving
# average after the probe's head: that day's "(defaults)" files are the kept head alone, and its average's runs spell
# it out. BatchNorm folding (models/bnfold.py) changed no option, only the speed: its runs are the peers-fold files.
ERAS = [("", None, "transferlearn, defaults before 2026-12-05 (fresh head after the probe)", None),
        ("2026-12-05", "--warmup-head keep --bn-eval-epochs -1 --amp off",
         "transferlearn, defaults before the moving average (probe's head kept, BatchNorm on running statistics)", None),
        ("2026-12-06", "--ema 1", "transferlearn, defaults before BatchNorm folding (probe's head kept, BatchNorm on "
         "running statistics, moving average of the weights)", None),
        ("2026-12-06", "--ema 1", "transferlearn, defaults (probe's head kept, BatchNorm on running statistics and "
         "folded into its convolution, moving average of the weights)", "peers-fold")]
NAMES = {"hymenoptera": "hymenoptera (245 / 153 images)", "flowers": "flower_photos (2,569 / 550)",
         "fmnist224": "Fashion-MNIST subset, 224 px (2,000 / 500)"}


def headline_label(r: dict, date: str, file: str = "") -> str | None:
    """A row's name in the headline tables (ERAS); None for a run that is not the defaults of any time."""
    if r["tool"] != "transferlearn":
        return r["tool"]
    spelled = next((name for _, options, name, prefix in reversed(ERAS) if options is not None
                    and r.get("options") == options and file.startswith(prefix or "")), None)
    dated = next((name for start, _, name, _ in reversed(ERAS) if date >= start), None)
    return spelled or (dated if r.get("options") == "(defaults)" else None)


def headline(dataset: str) -> dict:
    """The headline runs of `dataset`: its CPU kind, target, the tutorial's time to it, one epoch of the tutorial where
    only that was timed, and (file, row name, run, seconds to the target or None) per run."""
    from peers import first_reached, target, undisturbed
    kind, names = HEADLINE[dataset]
    paths = [resultfile.RESULTS / kind / n for n in names if (resultfile.RESULTS / kind / n).exists()]
    rows, per_epoch = [], None
    for path in paths:
        raw = resultfile.load(path)
        for r in raw["results"]:
            if r["tool"] == TUTORIAL and r["epochs"] != TUTORIAL_EPOCHS:
                per_epoch = per_epoch or r["loop_seconds"] / r["epochs"]
            elif (name := headline_label(r, raw["machine"]["date"], path.name)):
                rows.append((path, name, r))
    kept = kept_tutorial(paths[0]) if paths else None
    if kept and not any(r["tool"] == TUTORIAL for _, _, r in rows):
        rows.append((kept[0], TUTORIAL, kept[1]))
    tut = next((r for _, _, r in rows if r["tool"] == TUTORIAL), None)
    goal = target([tut]) if tut else None
    reached = [(p, n, r, first_reached(undisturbed(r), goal) if goal is not None else None) for p, n, r in rows]
    return {"kind": kind, "goal": goal, "tutorial_t": first_reached(undisturbed(tut), goal) if goal is not None else None,
            "per_epoch": per_epoch, "rows": reached}


def summary_block() -> str:
    """One table per dataset: every tool's best, end of run and time to the tutorial's best minus 0.5 point, on one
    CPU kind, each row naming its file and the machine's load when it ended (times are only an idle machine's)."""
    from peers import TARGET_MARGIN
    out = []
    for dataset in HEADLINE:
        h = headline(dataset)
        goal, tut_t, per_epoch = h["goal"], h["tutorial_t"], h["per_epoch"]
        cost = f" (one of its epochs took {per_epoch:.0f} s here: about {per_epoch * 25 / 60:.0f} minutes)" \
            if per_epoch else ""
        out += [f"**{dataset}**, `{h['kind']}`: " + (
            f"target A* = {goal:.4f} (the tutorial's best over its 25 epochs, {goal + TARGET_MARGIN:.4f}, minus 0.5 "
            "point)." if goal is not None else f"no target: the tutorial's 25 epochs have not been run on this CPU "
            f"kind{cost}, so no time to target can be given."), "",
                "| tool | file | epochs | best val acc | end-of-run s | time-to-target s | ratio | load after |",
                "|---|---|---|---|---|---|---|---|"]
        for path, name, r, t in h["rows"]:
            reach = "-" if goal is None else "not reached" if t is None else f"{t:.1f}"
            ratio = f"{tut_t / t:.1f}x" if t and tut_t else "-"
            load = r.get("load_after")
            end = f"{r['process_seconds']:.1f}" + (f" ({r['timing']}; not comparable)" if r.get("timing") else "")
            out.append(f"| {name}{slowed_note(r)} | `{path.stem}` | {r['epochs']} | {r['best_val_acc']:.4f} | {end} | {reach} | "
                       f"{ratio} | {'-' if load is None else load} |")
        out.append("")
    return "\n".join(out)


def readme_block() -> str:
    """README's one table: per dataset, today's defaults against the tutorial, fastai and timm, on the CPU kind of
    the headline tables (benchmarks.md has every row, file and command)."""
    lines = ["| data | target A* | transferlearn: best, end of run s, s to A* | tutorial, 25 epochs: best, s to A* | "
             "speed-up to A* | fastai `fine_tune` best | timm `train.py` best |", "|---|---|---|---|---|---|---|"]
    kinds = set()
    for dataset in HEADLINE:
        h = headline(dataset)
        kinds.add(h["kind"])
        ours = next(((r, t) for _, n, r, t in h["rows"] if n.startswith("transferlearn, defaults (")), None)
        tut = next(((r, t) for _, n, r, t in h["rows"] if n == TUTORIAL), None)
        peer = {n: r for _, n, r, _ in h["rows"] if n in ("fastai fine_tune", "timm train.py")}
        fmt = lambda t: "not reached" if t is None else f"{t:.1f}"  # noqa: E731
        goal = "none yet" if h["goal"] is None else f"{h['goal']:.4f}"
        mine = "-" if ours is None else (f"**{ours[0]['best_val_acc']:.4f}**, {ours[0]['process_seconds']:.0f}"
                                         + (" (shared machine)" if ours[0].get("timing") else "")
                                         + (f", **{fmt(ours[1])}**" if h["goal"] is not None else ""))
        theirs = "not run on this CPU" if tut is None else (f"{tut[0]['best_val_acc']:.4f}, {fmt(tut[1])}"
                                                            + (" (its slowed epochs at its median)" if
                                                               tut[0].get("slowed_epochs") else ""))
        speed = f"**{tut[1] / ours[1]:.1f}x**" if ours and tut and ours[1] and tut[1] else "-"
        lines.append(f"| {NAMES[dataset]} | {goal} | {mine} | {theirs} | {speed} | "
                     + " | ".join(f"{peer[k]['best_val_acc']:.4f}" if k in peer else "not run"
                                  for k in ("fastai fine_tune", "timm train.py")) + " |")
    return "\n".join(lines)


def benchmark_block() -> str:
    out = []
    for path in resultfile.all_results("benchmark*.json"):
        raw = resultfile.load(path)
        mode = next(m for m in raw if isinstance(raw[m], dict) and "ours" in raw[m])
        ours = raw[mode]["ours"]
        out += heading(path, raw)
        out += [format_table(raw, ours["arch"], "hymenoptera_data", ours["epochs"], raw["machine"]["threads"]), ""]
    return "\n".join(out)


def generic_block(pattern: str, decimals: int | None = None) -> str:
    """Result files that hold a finished table (columns, rows) rather than raw runs. Accuracies get 4 decimals, as
    the runs print them, other numbers as stored; `decimals` gives every fraction that many instead."""
    out = []
    for path in resultfile.all_results(pattern):
        raw = resultfile.load(path)
        out += [f"*{raw['title']}*", ""] + heading(path, raw)
        out += ["| " + " | ".join(raw["columns"]) + " |", "|" + "---|" * len(raw["columns"])]
        acc = [" acc" in f" {c}" for c in raw["columns"]]
        places = [decimals or (4 if a else None) for a in acc]
        out += ["| " + " | ".join(f"{c:.{d}f}" if d and isinstance(c, float) else str(c) for d, c in zip(places, row))
                + " |" for row in raw["rows"]] + [""]
    return "\n".join(out)


def trust_runs(table, first: bool = False) -> str:
    """One of docs/trust.md's questions (calibration, unknown, TTA) from each bench/trust.py result file; the
    first question's table is headed with the file's machine and command, the others point to it."""
    out = []
    for path in resultfile.all_results("trust_*.json"):
        raw = resultfile.load(path)
        out += heading(path, raw) if first else [f"**`{rel(path)}`**: machine and command under Calibration.", ""]
        out += table(raw["runs"]) + [""]
    return "\n".join(out)


def calibration_table(runs: dict) -> list[str]:
    """ECE before and after temperature scaling. The cross-fitted columns are measured on halves of val with T
    fitted on the other half; the in-sample one is what `transferlearn calibrate` prints, T fitted where measured."""
    lines = ["| run | val images | accuracy | T fitted on all val (on each half) | ECE as trained | "
             "ECE as trained, on halves | **ECE calibrated, cross-fitted** | ECE calibrated, in-sample |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        c = r["calibration"]
        halves = ", ".join(f"{t:.3f}" for t in c["t_halves"])
        lines.append(f"| {name} | {r['images']} | {r['tta']['none']['accuracy']:.4f} | {c['t_all']:.3f} ({halves}) | "
                     f"{c['ece_before']:.4f} | {c['ece_before_crossfit']:.4f} | **{c['ece_after_crossfit']:.4f}** | "
                     f"{c['ece_after_in_sample']:.4f} |")
    return lines


def unknown_table(runs: dict) -> list[str]:
    """AUROC and FPR at 95 % TPR of each score against each set of strangers, as trained (T = 1) and calibrated."""
    lines = []
    for name, r in runs.items():
        if not r.get("ood"):
            continue
        sets = list(dict.fromkeys(o["set"] for o in r["ood"]))
        imgs = {o["set"]: o["images"] for o in r["ood"]}
        lines += [f"In-distribution: the {name} run's val ({r['images']} images); strangers: "
                  + ", ".join(f"{s} ({imgs[s]} images)" for s in sets) + ".", "",
                  "| score | T | " + " | ".join(f"{s}: AUROC | {s}: FPR@95%TPR" for s in sets) + " |",
                  "|---|---|" + "---|---|" * len(sets)]
        cells: dict[tuple, dict] = {}
        for o in r["ood"]:
            cells.setdefault((o["score"], o["temperature"]), {})[o["set"]] = o
        for (kind, t), row in cells.items():
            tt = "1" if t == 1.0 else f"{t:.3g} (calibrated)"
            lines.append(f"| {kind} | {tt} | " + " | ".join(f"{row[s]['auroc']:.4f} | {row[s]['fpr95']:.4f}"
                                                           for s in sets) + " |")
        lines.append("")
    return lines


def tta_table(runs: dict) -> list[str]:
    """Accuracy, ECE and time over val per TTA mode; the cost is the time against no TTA on the same run."""
    lines = ["| run | TTA | accuracy | ECE (T = 1) | seconds for val | images/s | time vs none |",
             "|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        none = r["tta"]["none"]["seconds"]
        for mode, m in r["tta"].items():
            lines.append(f"| {name} ({r['images']}) | {mode} | {m['accuracy']:.4f} | {m['ece_t1']:.4f} | "
                         f"{m['seconds']:.1f} | {m['images_per_second']:.1f} | {m['seconds'] / none:.1f}x |")
    return lines


def machines_block() -> str:
    """One row per CPU and date: a CPU whose model string was not recorded is only known by its date."""
    lines = ["| folder | CPU | capability | AMX | date | result files |", "|---|---|---|---|---|---|"]
    rows: dict[tuple, list] = {}
    for path in resultfile.all_results():
        m = resultfile.load(path)["machine"]
        rows.setdefault((path.parent.name, m["cpu"], m["date"]), []).append((path, m))
    for (kind, cpu, date), files in rows.items():
        m = files[0][1]
        caps = sorted({f[1]["capability"] for f in files})
        amx = {True: "yes", False: "no"}.get(m["amx"], str(m["amx"]))
        names = ", ".join(f"`{p.stem}`" for p, _ in files)
        lines.append(f"| `{kind}` | {cpu} | {'; '.join(caps)} | {amx} | {date} | {names} |")
    return "\n".join(lines)


def placeholders_block() -> str:
    lines = ["| in a command | stands for |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in resultfile.PLACEHOLDERS.items()]
    return "\n".join(lines)


BLOCKS = {
    "machines": machines_block,
    "placeholders": placeholders_block,
    "peers-summary": summary_block,
    "readme-time": readme_block,
    "peers-hymenoptera": lambda: peers_block("hymenoptera"),
    "peers-flowers": lambda: peers_block("flowers"),
    "peers-fmnist224": lambda: peers_block("fmnist224"),
    "benchmark": benchmark_block,
    "trust-audit": lambda: generic_block("audit-*.json", decimals=3),
    "trust-calibration": lambda: trust_runs(calibration_table, first=True),
    "trust-unknown": lambda: trust_runs(unknown_table),
    "trust-tta": lambda: trust_runs(tta_table),
}


def render(page: str) -> str:
    def fill(m: re.Match) -> str:
        name = m["name"]
        body = BLOCKS[name]() if name in BLOCKS else generic_block(f"{name}_*.json")
        return f"{m.group(1)}\n{body.strip()}\n\n{m.group(4)}"
    return BLOCK.sub(fill, page)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"rewrite {PAGE.name} instead of printing it")
    a = ap.parse_args()
    page = render(PAGE.read_text(encoding="utf-8"))
    if a.write:
        PAGE.write_text(page, encoding="utf-8")
        README.write_text(render(README.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.stdout.write(page)


if __name__ == "__main__":
    main()
