"""audit.html: what `data audit` found, as thumbnails a person can judge at a glance, worst first.

One self-contained page (JPEG thumbnails base64-embedded, report.css inlined), so it opens from anywhere and can
be mailed. Each label issue shows the image, the given label against the suggested one and both probabilities;
each near-duplicate pair shows both images side by side; each outlier its distance. The longest lists are cut
at `limit` cards (the CSVs hold every row).
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from ..data.pixels import thumbnail
from .templates import template

CSS = """.thumbs{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:12px}
.thumb{border:1px solid #e3e3e3;border-radius:6px;padding:6px;background:#fcfcfc;font-size:.85em}
.thumb img{display:block;margin:0 auto 4px;max-height:170px;border:0}
.thumb .path{color:#777;word-break:break-all;font-size:.9em}.given{color:#b00}.sugg{color:#070;font-weight:600}
.pair{display:flex;gap:6px}.pair>div{flex:1}.rank{color:#999;float:right}"""


def embedded(path: Path, size: int = 170) -> str:
    """An <img> of the file as a small base64 JPEG (a grey square when it cannot be read)."""
    buf = io.BytesIO()
    thumbnail(str(path), size).convert("RGB").save(buf, "JPEG", quality=80)
    return f'<img alt="{html.escape(path.name)}" src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def issue_card(root: Path, r: dict) -> str:
    e = html.escape
    return (f'<div class="thumb"><span class="rank">#{r["rank"]}</span>{embedded(root / r["path"])}'
            f'<div>labelled <span class="given">{e(r["given_label"])}</span> ({r["self_confidence"]:.2f})</div>'
            f'<div>probably <span class="sugg">{e(r["suggested_label"])}</span> ({r["suggested_confidence"]:.2f})</div>'
            f'<div class="path">{e(r["path"])}</div></div>')


def duplicate_card(root: Path, r: dict) -> str:
    e = html.escape
    half = "".join(f'<div>{embedded(root / p, 120)}<div class="given">{e(lab)}</div><div class="path">{e(p)}</div></div>'
                   for p, lab in ((r["path"], r["label"]), (r["other_path"], r["other_label"])))
    return f'<div class="thumb"><div>similarity {r["similarity"]:.3f}</div><div class="pair">{half}</div></div>'


def outlier_card(root: Path, r: dict) -> str:
    e = html.escape
    return (f'<div class="thumb"><span class="rank">#{r["rank"]}</span>{embedded(root / r["path"])}'
            f'<div>{e(r["label"])}: distance {r["neighbour_distance"]:.3f} (z {r["z"]:.1f})</div>'
            f'<div class="path">{e(r["path"])}</div></div>')


def section(title: str, rows: list[dict], card, root: Path, limit: int, csv_name: str, none: str) -> str:
    if not rows:
        return f"<h2>{html.escape(title)}</h2><p>{html.escape(none)}</p>"
    more = (f"<p>The first {limit} of {len(rows)}; {csv_name} lists them all.</p>" if len(rows) > limit
            else f"<p>{len(rows)}, also in {csv_name}.</p>")
    return (f"<h2>{html.escape(title)}</h2>{more}<div class=\"thumbs\">" +
            "".join(card(root, r) for r in rows[:limit]) + "</div>")


def write_audit_page(path: str | Path, root: str | Path, summary: str, issues: list[dict], duplicates: list[dict],
                     outliers: list[dict], info: dict, limit: int = 200) -> Path:
    """Write audit.html for the dataset at `root` (the rows' paths are relative to it)."""
    root, path, e = Path(root), Path(path), html.escape
    how = (f"Features: {e(str(info.get('features', '')))}, {info.get('img_size', '')} px; "
           f"{info.get('folds', '')}-fold out-of-fold probabilities from {e(str(info.get('probe', '')))}; "
           f"label errors by {e(str(info.get('method', '')))}. Nothing was moved: "
           f"<code>transferlearn data audit DATA --fix</code> moves the label issues to the quarantine folder "
           f"(<code>transferlearn data check --undo QUARANTINE</code> brings them back).")
    body = [f'<div class="reading"><p>{e(summary)}</p><p>{how}</p></div>',
            section("Likely label errors (least likely given label first)", issues, issue_card, root, limit,
                    "label_issues.csv", "None found."),
            section("Near-duplicates under different labels", duplicates, duplicate_card, root, limit,
                    "near_duplicates.csv", f"None at similarity {info.get('dup_threshold', '')} or above."),
            section("Outliers (far from every other image)", outliers, outlier_card, root, limit, "outliers.csv",
                    f"None with z above {info.get('outlier_z', '')}.")]
    text = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>data audit: {e(root.name)}</title><style>\n{template('report.css')}\n{CSS}</style></head><body>\n"
            f"<h1>data audit: {e(root.name)}</h1><p class=\"sub\">{e(str(root.resolve()))}</p>\n" + "\n".join(body) +
            "\n</body></html>\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
