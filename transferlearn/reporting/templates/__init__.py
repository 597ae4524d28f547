"""The HTML and CSS that pages are made from, kept as files (package data) rather than strings in code:
serve.html (the `transferlearn serve` page, with {{NAME}} slots) and report.css (every report.html)."""
from __future__ import annotations

from functools import lru_cache
from importlib.resources import files


@lru_cache(maxsize=None)
def template(name: str) -> str:
    """The text of templates/NAME (UTF-8)."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")
