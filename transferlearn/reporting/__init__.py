"""Pictures and pages for people: matplotlib plots, CJK-capable fonts, the HTML report.

- plots.py   PNG plots (headless Agg): training curves, comparisons, confusion matrix, PR/ROC, image grids
- fonts.py   a font that draws 苹果-红 when the system has none (mplfonts' Noto Sans CJK)
- report.py  one self-contained report.html per run, evaluation folder and comparison
- audit_page.py  `data audit`'s audit.html: thumbnails of likely label errors, duplicates, outliers
- templates/ the HTML and CSS pages are made from (package data): report.css, serve.html
"""
from ..lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "report": ("write_report", "write_compare_report"),
    "fonts": ("use_cjk_font", "warn_if_no_cjk_font", "missing_glyphs"),
    "templates": ("template",),
})
