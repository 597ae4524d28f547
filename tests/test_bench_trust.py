"""bench/audit_flips.py and bench/trust.py write result files docs/benchmarks.md can show, and report.py's trust
tables say what the files hold."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def test_audit_score_writes_a_result_file_with_the_audits_folds(tmp_path, monkeypatch):
    import audit_flips
    from test_benchmarks_page import command_problems
    (tmp_path / "truth.csv").write_text("path,true,given\nroses/a.jpg,tulips,roses\nroses/b.jpg,daisy,roses\n",
                                        encoding="utf-8")
    out = tmp_path / "audit"
    out.mkdir()
    (out / "label_issues.csv").write_text("\ufeffrank,path\n1,roses/a.jpg\n2,tulips/c.jpg\n3,roses/b.jpg\n",
                                          encoding="utf-8")
    (out / "audit.json").write_text(json.dumps({"images": 40, "folds": 10, "arch": "efficientnet_lite0",
                                                "probe_accuracy": 0.9, "seconds": 3.0, "root": "x"}),
                                    encoding="utf-8")
    rel = "bench/results/avx512-amx/audit-flips_tiny_lite0.json"
    dest = tmp_path / "r.json"
    monkeypatch.setattr(sys, "argv", ["bench/audit_flips.py", "score", "truth.csv", "audit/label_issues.csv",
                                      "--json", rel])
    res = audit_flips.score(tmp_path / "truth.csv", out / "label_issues.csv", dest)
    assert res["flagged"] == 3 and res["top_n_recall"] == 0.5 and res["recall"] == 1.0
    raw = json.loads(dest.read_text(encoding="utf-8"))
    assert raw["machine"]["command"] == ("python bench/audit_flips.py score truth.csv audit/label_issues.csv "
                                         f"--json {rel}")
    assert command_problems(rel, raw["machine"]) == []
    assert raw["rows"] == [["top N (N = 2 planted)", 10, 2, 0.5, 0.5],
                           ["everything cleanlab flagged", 10, 3, 0.667, 1.0]]
    assert "root" not in raw["audit"] and "10 folds" in raw["machine"]["notes"]


def trust_runs():
    ood = [{"set": s, "temperature": t, "score": k, "auroc": 0.5 + i / 100, "fpr95": 0.9 - i / 100, "images": n}
           for i, (s, n, t, k) in enumerate((s, n, t, k) for s, n in (("bees/val", 10), ("fashion-mnist test", 20))
                                            for t in (1.0, 0.5) for k in ("msp", "energy"))]
    return {"flowers": {"images": 30, "tta": {"none": {"accuracy": 0.9, "seconds": 10.0, "images_per_second": 3.0,
                                                       "ece_t1": 0.05},
                                              "flip": {"accuracy": 0.8, "seconds": 25.0, "images_per_second": 1.2,
                                                       "ece_t1": 0.07}},
                        "calibration": {"ece_before": 0.05, "ece_before_crossfit": 0.06, "ece_after_crossfit": 0.04,
                                        "ece_after_in_sample": 0.02, "t_all": 0.7, "t_halves": [0.6, 0.8]},
                        "ood": ood}}


def test_trust_tables_show_each_question():
    import report
    cal = "\n".join(report.calibration_table(trust_runs()))
    assert "| flowers | 30 | 0.9000 | 0.700 (0.600, 0.800) | 0.0500 | 0.0600 | **0.0400** | 0.0200 |" in cal
    unk = report.unknown_table(trust_runs())
    assert "strangers: bees/val (10 images), fashion-mnist test (20 images)." in unk[0]
    assert "| energy | 0.5 (calibrated) | 0.5300 | 0.8700 | 0.5700 | 0.8300 |" in unk  # same score and T, both sets
    assert len([line for line in unk if line.startswith("| msp") or line.startswith("| energy")]) == 4
    tta = report.tta_table(trust_runs())
    assert "| flowers (30) | flip | 0.8000 | 0.0700 | 25.0 | 1.2 | 2.5x |" in tta
