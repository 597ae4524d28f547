"""docs/benchmarks.md is what bench/report.py prints from bench/results/, and the time-to-target rule is MLPerf's."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def test_committed_page_is_what_report_prints():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "report.py")], capture_output=True, text=True,
                       encoding="utf-8", timeout=120)
    assert r.returncode == 0, r.stderr
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert r.stdout == page, "docs/benchmarks.md is stale: run `python bench/report.py --write`"
    assert "<!-- report:peers-hymenoptera -->\n\n**`bench/results/" in page  # the blocks are filled, not empty
    import report
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert report.render(readme) == readme, "README.md's table is stale: run `python bench/report.py --write`"
    assert "<!-- report:readme-time -->\n\n| data |" in readme


def test_every_result_file_names_its_machine_and_command():
    import resultfile
    files = resultfile.all_results()
    assert len(files) >= 20
    for path in files:
        assert path.parent.parent == resultfile.RESULTS
        assert path.stem.count("_") == 2, f"{path.name}: not <benchmark>_<dataset>_<arch>.json"
        m = json.loads(path.read_text(encoding="utf-8"))["machine"]
        for key in ("cpu", "capability", "amx", "threads", "torch", "torchvision", "date", "command"):
            assert m.get(key) not in (None, ""), (path, key)
        assert path.name in m["command"] or "bench/" in m["command"] or "transferlearn" in m["command"], path


TOOLS = {"python", "transferlearn", "torchrun", "farm-bench"}  # what a result's command may start with
ENV = re.compile(r"^[A-Z][A-Z0-9_]*=\S*$")


def command_problems(rel: str, meta: dict) -> list[str]:
    """Why `meta["command"]` is not a command line that reproduces the result file at `rel` (empty: it is)."""
    import resultfile
    cmd, bad = meta["command"], []
    try:
        tokens = shlex.split(cmd)
    except ValueError as e:
        return [f"does not parse as a shell line: {e}"]
    parts, part = [], []
    for tok in tokens + ["&&"]:
        if tok == "&&":
            parts.append(part)
            part = []
        else:
            part.append(tok)
    for part in parts:
        words = [w for w in part if not ENV.match(w)] or ["(nothing)"]
        if words[0] not in TOOLS:
            bad.append(f"starts with {words[0]!r}, not a named tool ({', '.join(sorted(TOOLS))})")
        elif words[0] == "python" and not (len(words) > 1 and words[1].startswith("bench/")
                                           and (ROOT / words[1]).is_file()):
            bad.append(f"runs {words[1:2]}, not a script in bench/")
    if ".json/" in cmd:
        bad.append("a path runs on past a .json file: a placeholder was replaced by a path")
    if cmd.count(rel) > 1:
        bad.append(f"names its own path {cmd.count(rel)} times")
    for i, tok in enumerate(tokens[:-1]):
        if tok == "--json" and tokens[i + 1] != rel:
            bad.append(f"writes {tokens[i + 1]}, not its own path {rel}")
    for word in re.findall(r"[A-Za-z0-9_]+", cmd):
        if re.search(r"[A-Z]{2}", word) and word != word.upper():
            bad.append(f"{word!r}: a placeholder run into other text")
    known = resultfile.placeholders(meta)
    for m in re.finditer(r"(?<![\w=-])([A-Z][A-Z0-9_]{2,})(?![\w=])", cmd):
        if m[1] not in known:
            bad.append(f"{m[1]}: a placeholder that neither docs/benchmarks.md nor the file explains")
    return bad


def test_every_result_command_is_a_command_line_that_reproduces_it():
    import resultfile
    problems = {}
    for path in resultfile.all_results():
        rel = path.relative_to(ROOT).as_posix()
        if found := command_problems(rel, json.loads(path.read_text(encoding="utf-8"))["machine"]):
            problems[rel] = found
    assert not problems, problems


def test_the_command_check_catches_a_mangled_placeholder():
    rel = "bench/results/avx2/peers_hymenoptera_lite0.json"
    good = f"python bench/peers.py --timm-train TIMM_CHECKOUT/train.py --timm-src TIMM_CHECKOUT --json {rel}"
    assert command_problems(rel, {"command": good}) == []
    mangled = good.replace("TIMM_CHECKOUT", f"TIMM_CHECK{rel}")
    found = " ".join(command_problems(rel, {"command": mangled}))
    assert ".json file" in found and "3 times" in found and "run into other text" in found
    assert command_problems(rel, {"command": "echo hi; then python x.py"})
    assert "explains" in " ".join(command_problems(rel, {"command": "python bench/peers.py --data MY_DIR"}))
    assert command_problems(rel, {"command": "python bench/peers.py --data MY_DIR",
                                  "placeholders": {"MY_DIR": "a folder"}}) == []
    assert command_problems(rel, {"command": "OMP_NUM_THREADS=1 ONEDNN_MAX_CPU_ISA=AVX2 torchrun -m transferlearn train"
                                             " && transferlearn eval runs/x"}) == []
    assert "not its own path" in " ".join(command_problems(rel, {"command": "python bench/peers.py --json other.json"}))


def curve(*accs, start=10.0, step=10.0):
    return [[start + step * i, a] for i, a in enumerate(accs)]


def test_time_to_target_is_first_time_at_tutorials_best_minus_half_a_point():
    from peers import target, time_to_target_table
    tut = {"tool": "tutorial loop", "best_val_acc": 0.90, "process_seconds": 260.0, "loop_seconds": 250.0,
           "epochs": 25, "curve": curve(*([0.80] * 10 + [0.896] + [0.90] * 14))}
    fast = {"tool": "transferlearn", "options": "(defaults)", "best_val_acc": 0.91, "process_seconds": 40.0,
            "loop_seconds": 35.0, "epochs": 3, "curve": curve(0.85, 0.91, 0.90, start=5.0)}
    slow = {"tool": "fastai fine_tune", "best_val_acc": 0.89, "process_seconds": 90.0, "loop_seconds": 80.0,
            "epochs": "1+4", "curve": curve(0.85, 0.89)}
    assert target([tut, fast]) == 0.895
    rows = {line.split(" | ")[0].lstrip("| "): line for line in time_to_target_table([fast, tut, slow]).splitlines()
            if line.startswith("| ") and "---" not in line and not line.startswith("| tool")}
    assert rows["transferlearn (defaults)"].endswith("| 15.0 | 7.3x |")  # 0.91 at 15 s; the tutorial at 110 s
    assert rows["tutorial loop"].endswith("| 110.0 | 1.0x |")  # its 11th epoch, 0.896 >= 0.895
    assert rows["fastai fine_tune"].endswith("| not reached | - |")


def test_a_tutorial_of_one_epoch_gives_no_target_and_no_curve():
    from peers import target, time_to_target_table
    one = {"tool": "tutorial loop", "best_val_acc": 0.62, "process_seconds": 160.0, "loop_seconds": 155.0,
           "epochs": 1, "curve": [[160.0, 0.62]]}
    ours = {"tool": "transferlearn", "options": "--epochs 7", "best_val_acc": 0.87, "process_seconds": 400.0,
            "loop_seconds": 390.0, "epochs": 7, "curve": curve(0.85, 0.87)}
    assert target([ours, one]) is None
    text = time_to_target_table([ours, one])
    assert text.startswith("No target")
    assert "1 of its 25 epochs timed; no curve" in text and "about 3,875 loop s, extrapolated" in text
    assert "| transferlearn `--epochs 7` | 7 | 0.8700 | 400.0 | - | - |" in text


def test_a_tutorial_kept_in_another_file_of_the_same_cpu_kind_sets_the_target(tmp_path):
    """The tutorial's 25 epochs cost an hour or more on flowers: run once per CPU kind, every later file of that
    folder is timed against them, and the table says where they come from."""
    import json
    from peers import kept_tutorial, time_to_target_table
    folder = tmp_path / "avx512-amx"
    folder.mkdir()
    tut = {"tool": "tutorial loop", "best_val_acc": 0.90, "process_seconds": 260.0, "loop_seconds": 250.0,
           "epochs": 25, "curve": curve(*([0.80] * 10 + [0.896] + [0.90] * 14))}
    ours = {"tool": "transferlearn", "options": "(defaults)", "best_val_acc": 0.91, "process_seconds": 40.0,
            "loop_seconds": 35.0, "epochs": 3, "curve": curve(0.85, 0.91, 0.90, start=5.0)}
    (folder / "peers-tutorial25_flowers_lite0.json").write_text(json.dumps({"results": [tut]}))
    (folder / "peers_flowers_lite0.json").write_text(json.dumps({"results": [ours]}))
    (folder / "peers_flowers_mnv2.json").write_text(json.dumps({"results": [ours]}))
    # the tutorial's script trains Lite0 whatever the file's arch: a MobileNetV2 file is timed against the same run
    assert kept_tutorial(folder / "peers_flowers_mnv2.json")[0].name == "peers-tutorial25_flowers_lite0.json"
    assert kept_tutorial(folder / "peers_hymenoptera_lite0.json") is None  # another dataset: no target
    name, kept = kept_tutorial(folder / "peers_flowers_lite0.json")
    assert name.name == "peers-tutorial25_flowers_lite0.json" and kept["epochs"] == 25
    text = time_to_target_table([ours], (name, kept))
    assert "Target A* = 0.8950" in text and "kept in `peers-tutorial25_flowers_lite0.json`" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln and not ln.startswith("| tool")]
    assert rows[0].endswith("| 15.0 | 7.3x |")
    assert rows[1].startswith("| tutorial loop (its run kept in") and rows[1].endswith("| 110.0 | 1.0x |")
    assert time_to_target_table([ours]).startswith("No target")


def test_epochs_another_job_slowed_are_timed_at_the_runs_median_epoch():
    """A tutorial run whose first epochs shared the CPU: its time to target must not be longer than alone, or every
    ratio against it flatters the others."""
    from peers import first_reached, time_to_target_table, undisturbed
    tut = {"tool": "tutorial loop", "best_val_acc": 0.90, "process_seconds": 400.0, "loop_seconds": 390.0,
           "epochs": 25, "curve": curve(*([0.80] * 10 + [0.896] + [0.90] * 14))}  # 10 s per epoch
    slowed = {**tut, "curve": [(t + (30.0 if t > 10 else 20.0), a) for t, a in tut["curve"]], "slowed_epochs": [1, 2]}
    assert first_reached(slowed["curve"], 0.895) == 140.0  # as measured: epochs 1 and 2 took 30 and 20 s
    assert first_reached(undisturbed(slowed), 0.895) == 110.0  # both at the median of the other epochs, 10 s
    assert undisturbed(tut) == tut["curve"]
    ours = {"tool": "transferlearn", "options": "(defaults)", "best_val_acc": 0.91, "process_seconds": 40.0,
            "loop_seconds": 35.0, "epochs": 3, "curve": curve(0.85, 0.91, 0.90, start=5.0)}
    text = time_to_target_table([ours, slowed])
    assert "| 15.0 | 7.3x |" in text and "epochs 1-2 slowed by other jobs, timed at its median epoch" in text


def test_headline_rows_name_which_defaults_they_ran():
    """A file's "(defaults)" are those of its date: the headline tables must not call the old ones today's."""
    from report import headline_label
    ours = {"tool": "transferlearn", "options": "(defaults)"}
    assert "before 2026-12-05 (fresh head" in headline_label(ours, "2026-12-02")
    assert "before the moving average" in headline_label(ours, "2026-12-05")  # that day's first switch only
    assert headline_label(ours, "2026-12-06").startswith("transferlearn, defaults (")
    # the moving average's runs spell it out; the runs after BatchNorm folding, the same options, are their own files
    assert "before BatchNorm folding" in headline_label({**ours, "options": "--ema 1"}, "2026-12-05",
                                                        "peers-ema1_flowers_lite0.json")
    assert headline_label({**ours, "options": "--ema 1"}, "2026-12-05", "peers-fold_flowers_lite0.json") \
        .startswith("transferlearn, defaults (")
    assert "before the moving average" in headline_label(
        {**ours, "options": "--warmup-head keep --bn-eval-epochs -1 --amp off"}, "2026-12-02")
    assert headline_label({**ours, "options": "--amp bf16"}, "2026-12-05") is None  # not a defaults run: left out
    assert headline_label({"tool": "fastai fine_tune"}, "2026-12-02") == "fastai fine_tune"
