"""CJK-capable fonts for matplotlib, so class names like 苹果-红 never render as tofu boxes."""
from __future__ import annotations

import functools
import logging

# Families that cover Simplified Chinese, best first (Debian: fonts-noto-cjk, fonts-wqy-zenhei).
CJK_FAMILIES = ["Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "Source Han Sans SC",
                "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
                "Heiti SC", "Arial Unicode MS", "Droid Sans Fallback"]


@functools.lru_cache(maxsize=1)
def use_cjk_font() -> str | None:
    """Put the first installed CJK family in front of matplotlib's sans-serif list; return its name."""
    import matplotlib
    from matplotlib import font_manager

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    chosen = next((f for f in CJK_FAMILIES if f in installed), None)
    if chosen is None:
        return None
    matplotlib.rcParams["font.sans-serif"] = [chosen] + [f for f in matplotlib.rcParams["font.sans-serif"]
                                                         if f != chosen]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False
    return chosen
