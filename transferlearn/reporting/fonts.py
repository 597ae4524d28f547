"""CJK-capable fonts for matplotlib, so class names like 苹果-红 never render as tofu boxes.

Order of preference:
1. a CJK family installed on the system (Debian: fonts-noto-cjk, fonts-wqy-zenhei; macOS/Windows fonts);
2. Noto Sans CJK SC shipped inside the PyPI package `mplfonts` (a dependency), registered with
   matplotlib at run time without touching the user's matplotlib configuration;
3. none: ONE warning telling the user what to install, and matplotlib's per-glyph
   "Glyph ... missing from font" warnings are silenced so that they do not flood the output.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import sys
import warnings
from pathlib import Path

# Families that cover Simplified Chinese, best first (Debian: fonts-noto-cjk, fonts-wqy-zenhei).
CJK_FAMILIES = ["Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "Source Han Sans SC",
                "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
                "Heiti SC", "Arial Unicode MS", "Droid Sans Fallback"]

# Font files inside PyPI packages, tried when no system family is installed: (package, relative path).
PACKAGED_FONTS = [("mplfonts", "fonts/NotoSansCJKsc-Regular.otf"), ("mplfonts", "fonts/SimHei.ttf")]

NO_CJK_FONT_WARNING = ("transferlearn: no CJK font found, so Chinese/Japanese/Korean class names will show as "
                       "empty boxes in plots. Install one: `sudo apt-get install fonts-noto-cjk` (Debian/Ubuntu), "
                       "or `pip install mplfonts`.")

# Characters used to check that a font really covers Simplified Chinese (from fruit30's class names).
PROBE = "哈密瓜圣女果苹果红"


def _packaged_font_files() -> list[Path]:
    out = []
    for pkg, rel in PACKAGED_FONTS:
        try:
            spec = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        p = Path(list(spec.submodule_search_locations)[0]) / rel
        if p.is_file():
            out.append(p)
    return out


def font_covers(path: str | Path, text: str) -> bool:
    """True if the font file at `path` has a glyph for every character of `text`."""
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(str(path))
    except Exception:
        return False
    return all(font.get_char_index(ord(ch)) != 0 for ch in text if not ch.isspace())


def _register_packaged_font() -> str | None:
    from matplotlib import font_manager

    for path in _packaged_font_files():
        if not font_covers(path, PROBE):
            continue
        try:
            font_manager.fontManager.addfont(str(path))
            return font_manager.FontProperties(fname=str(path)).get_name()
        except Exception:  # a broken file: try the next
            continue
    return None


@functools.lru_cache(maxsize=1)
def use_cjk_font() -> str | None:
    """Put a CJK-capable family in front of matplotlib's sans-serif list; return its name (None if none).

    Called once per process (cached); warns once when no CJK font can be found."""
    import matplotlib
    from matplotlib import font_manager

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    chosen = next((f for f in CJK_FAMILIES if f in installed), None)
    if chosen is None:
        chosen = _register_packaged_font()
    if chosen is None:
        # `warn_if_no_cjk_font` says it once, when CJK text is drawn: not once per missing glyph and plot
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font")
        return None
    matplotlib.rcParams["font.sans-serif"] = [chosen] + [f for f in matplotlib.rcParams["font.sans-serif"]
                                                         if f != chosen]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False
    return chosen


def is_cjk(ch: str) -> bool:
    """Chinese/Japanese/Korean characters and CJK punctuation (the ranges Latin fonts lack)."""
    o = ord(ch)
    return (0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF
            or 0x20000 <= o <= 0x3FFFF)


_warned = False


def warn_if_no_cjk_font(texts) -> bool:
    """If `texts` contain CJK characters and no CJK font exists, print ONE warning per process.

    Returns True when a warning applies (printed now or earlier). Plots call it with class names."""
    global _warned
    if use_cjk_font() is not None or not any(is_cjk(ch) for t in texts for ch in str(t)):
        return False
    if not _warned:
        _warned = True
        print(NO_CJK_FONT_WARNING, file=sys.stderr, flush=True)
    return True


def missing_glyphs(text: str) -> list[str]:
    """Characters of `text` that no font of matplotlib's current sans-serif fallback list can draw."""
    import matplotlib
    from matplotlib import font_manager

    paths = []
    for fam in matplotlib.rcParams["font.sans-serif"]:
        try:
            p = font_manager.findfont(font_manager.FontProperties(family=fam), fallback_to_default=False)
        except Exception:
            continue
        if p not in paths:
            paths.append(p)
    from matplotlib.ft2font import FT2Font

    fonts = []
    for p in paths:
        try:
            fonts.append(FT2Font(p))
        except Exception:
            pass
    return [ch for ch in dict.fromkeys(text) if not ch.isspace()
            and not any(f.get_char_index(ord(ch)) != 0 for f in fonts)]
