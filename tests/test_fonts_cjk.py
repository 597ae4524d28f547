"""Chinese class names must render in plots: a CJK font is found (system or the PyPI fallback), every
glyph of fruit30's class names is covered, and drawing them raises no "Glyph missing" warning."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from transferlearn import fonts

# class names of the fruit30 dataset (a few of them, with the trickiest characters)
FRUIT30 = ["哈密瓜", "圣女果", "山竹", "杨梅", "柚子", "柠檬", "梨", "椰子", "榴莲", "火龙果", "猕猴桃", "石榴",
           "砂糖橘", "胡萝卜", "脐橙", "芒果", "苦瓜", "苹果-红", "苹果-青", "草莓", "荔枝", "菠萝", "葡萄-白",
           "葡萄-红", "西瓜", "西红柿", "车厘子", "香蕉", "黄瓜", "白兰瓜"]


def _cjk_available() -> bool:
    return fonts.use_cjk_font() is not None


def test_cjk_font_covers_fruit30_and_draws_without_missing_glyphs(tmp_path):
    chosen = fonts.use_cjk_font()
    if chosen is None:
        pytest.skip("no CJK font on this machine (neither fonts-noto-cjk nor the mplfonts package): "
                    "Chinese class names cannot render")
    text = "".join(FRUIT30)
    assert fonts.missing_glyphs(text) == [], f"{chosen} lacks glyphs"
    from transferlearn import plots  # noqa: F401  (sets the font up like every plot does)
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_yticks(range(len(FRUIT30)), FRUIT30)
        ax.set_title(" ".join(FRUIT30[:6]))
        fig.savefig(tmp_path / "cjk.png")
        plt.close(fig)
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert not missing, missing[:3]


def test_missing_glyphs_detects_uncovered_text():
    # a private-use character no real font draws
    assert fonts.missing_glyphs("a\ue000") == ["\ue000"]


def test_packaged_font_really_contains_cjk():
    files = fonts._packaged_font_files()
    if not files:
        pytest.skip("the mplfonts package (PyPI CJK font fallback) is not installed")
    assert fonts.font_covers(files[0], "".join(FRUIT30))


@pytest.mark.parametrize("hide_packaged", [False, True])
def test_fallback_without_system_font_warns_at_most_once(tmp_path, hide_packaged):
    """With system CJK families hidden: the packaged font is used, or exactly one warning is printed
    when Chinese names are drawn (none for Latin names), and no per-glyph warning flood."""
    hide = "fonts.PACKAGED_FONTS[:] = []" if hide_packaged else ""
    code = f"""
import warnings, matplotlib
matplotlib.use("Agg")
from transferlearn import fonts
fonts.CJK_FAMILIES[:] = ["No Such Family"]
{hide}
print("CHOSEN", fonts.use_cjk_font())
from transferlearn import plots
import sys
with warnings.catch_warnings(record=True) as w:  # keeps the filters in force (no simplefilter)
    plots.plot_confusion_matrix([[1, 0], [0, 1]], ["ants", "bees"], r"{tmp_path}/latin.png")
    sys.stderr.write("LATIN_DONE\\n")
    for i in range(3):
        plots.plot_confusion_matrix([[1, 0], [0, 1]], ["哈密瓜", "圣女果"], r"{tmp_path}/x%d.png" % i)
        plots.plot_per_class({{"苹果-红": dict(f1=1.0, precision=1.0, recall=1.0, support=1)}}, r"{tmp_path}/p%d.png" % i)
print("GLYPH_WARNINGS", sum("missing from" in str(x.message) for x in w))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "GLYPH_WARNINGS 0" in r.stdout, r.stdout + r.stderr
    if hide_packaged:
        assert "CHOSEN None" in r.stdout
    elif fonts._packaged_font_files():
        assert "CHOSEN Noto Sans CJK SC" in r.stdout
    if "CHOSEN None" in r.stdout:
        assert r.stderr.count("no CJK font found") == 1, r.stderr
        assert r.stderr.index("LATIN_DONE") < r.stderr.index("no CJK font found")  # not for Latin names
        assert "fonts-noto-cjk" in r.stderr
    else:
        assert "no CJK font found" not in r.stderr


def test_eval_plots_with_30_chinese_classes(tmp_path):
    """Every evaluation plot with fruit30's 30 Chinese class names: drawn without missing glyphs."""
    if fonts.use_cjk_font() is None:
        pytest.skip("no CJK font on this machine (neither fonts-noto-cjk nor the mplfonts package)")
    import numpy as np

    from transferlearn import metrics as M
    from transferlearn import plots

    rng = np.random.default_rng(0)
    n = len(FRUIT30)
    y = np.repeat(np.arange(n), 4)
    logits = rng.normal(0, 1, (len(y), n))
    logits[np.arange(len(y)), y] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = M.compute_metrics(y, probs, FRUIT30)
    assert set(m["top_k_accuracy"]) == {"1", "3", "5"}
    assert m["top_k_accuracy"]["5"] >= m["top_k_accuracy"]["3"] >= m["accuracy"]
    cv = M.curves(y, probs, n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.plot_confusion_matrix(m["confusion_matrix"], FRUIT30, tmp_path / "cm.png")
        plots.plot_per_class(m["per_class"], tmp_path / "pc.png")
        plots.plot_pr_curves(cv["pr"], FRUIT30, {c: v["ap"] for c, v in m["per_class"].items()}, tmp_path / "pr.png")
        plots.plot_features_2d(rng.normal(size=(len(y), 2)), y, FRUIT30, tmp_path / "f.png")
        plots.plot_class_counts(FRUIT30, {"train": [10] * n, "val": [3] * n}, tmp_path / "counts.png")
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert not missing, missing[:3]
    assert all((tmp_path / f).stat().st_size > 10000 for f in ("cm.png", "pc.png", "pr.png", "f.png", "counts.png"))
