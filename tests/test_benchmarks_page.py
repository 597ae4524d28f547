"""docs/benchmarks.md is what bench/report.py prints from bench/results/, and the time-to-target rule is MLPerf's."""
from __future__ import annotations

import json
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
