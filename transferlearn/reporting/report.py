"""report.html: one self-contained page per run folder, evaluation folder and comparison.

Everything is read back from the files a run, an evaluation or a comparison wrote (summary.json,
args.yaml, results.csv, metrics.json and the PNGs), so a report can be rebuilt at any time with
`write_report(folder)` / `write_compare_report(folder)`. Images are base64-embedded: the file can
be mailed or opened from anywhere. No matplotlib here.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path

from ..runs.folders import read_csv
from .templates import template


# ---------------------------------------------------------------- small helpers

def _e(x) -> str:
    return html.escape(str(x))


def _img(path: Path, alt: str = "") -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt or path.name)}" src="data:image/png;base64,{data}">'


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_yaml(path: Path):
    try:
        import yaml
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:
        return None


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def _num(x, nd: int = 4) -> str:
    if x is None or x == "":
        return "n/a"
    try:
        return f"{float(x):.{nd}f}"
    except (TypeError, ValueError):
        return _e(x)


def _table(rows: list[list], header: list[str] | None = None, numeric_from: int = 1,
           numeric_to: int = 10**6) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>")
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = ' class="n"' if numeric_from <= i < numeric_to else ""
            cells.append(f"<td{cls}>{v if isinstance(v, Markup) else _e(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


class Markup(str):
    """A string already escaped."""


def _page(title: str, subtitle: str, body: list[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>\n{template('report.css')}</style></head><body>\n"
            f"<h1>{_e(title)}</h1><p class=\"sub\">{_e(subtitle)}</p>\n" + "\n".join(b for b in body if b) +
            "\n</body></html>\n")


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _now() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- readings in plain language

def fit_reading(summary: dict, rows: list[dict] | None = None) -> list[str]:
    """Sentences about over-fitting and convergence for one run."""
    out = []
    tr, va = summary.get("final_train_acc"), summary.get("final_val_acc")
    name = summary.get("mode", "this run")
    if tr is not None and va is not None:
        gap = tr - va
        if gap > 0.10:
            out.append(f"{name}: signs of over-fitting: final train accuracy {_pct(tr)} vs val {_pct(va)} "
                       f"(a gap of {100 * gap:.1f} points). More data, augmentation, fewer epochs or "
                       f"freezing more layers would help.")
        elif gap > 0.04:
            out.append(f"{name}: a mild train/val gap ({_pct(tr)} vs {_pct(va)}, {100 * gap:.1f} points).")
        elif gap < -0.02:
            out.append(f"{name}: val accuracy ({_pct(va)}) is above train ({_pct(tr)}); normal when training "
                       f"images are augmented and dropout is on during training: no over-fitting.")
        else:
            out.append(f"{name}: train and val accuracy are close ({_pct(tr)} vs {_pct(va)}): no sign of over-fitting.")
    w = summary.get("head_warmup")
    if w:
        out.append(f"{name}: the new head was first trained for {w['epochs']} epochs on the frozen backbone's "
                   f"features ({w['views']} augmented views per image, {w['seconds']:.0f} s; val accuracy "
                   f"{_pct(w['val_acc'])} after it), then every layer was fine-tuned (--head-warmup), starting "
                   + ("from the probe's head (--warmup-head keep)" + (
                       ", BatchNorm on the running statistics the probe was fitted with (--bn-eval-epochs)."
                       if w.get("bn_eval_epochs") else ".") if w.get("start", "keep") == "keep" else
                      "from a fresh head, as without the warm-up; the probe stayed a candidate (--warmup-head reset)."))
    be, ep = summary.get("best_epoch"), summary.get("epochs_run") or summary.get("epochs")
    if w and be == 0 and ep:
        out.append(f"{name}: fine-tuning never beat the warmed-up head (val accuracy {_pct(w['val_acc'])}): "
                   f"best.pt is the model after the warm-up, the backbone as pretrained. On this data a frozen "
                   f"backbone (last-layer) is as good; a lower --lr may let fine-tuning help."
                   + (f" Fine-tuning stopped after epoch {ep} of {summary.get('epochs')} "
                      f"(--warmup-patience, --patience)."
                      if summary.get("stopped_early") else ""))
    elif summary.get("stopped_early"):
        out.append(f"{name}: stopped early after epoch {ep} of {summary.get('epochs')}: val accuracy had stopped "
                   f"improving (best {_pct(summary.get('best_val_acc'))} at epoch {be}; --patience).")
    elif be and ep and ep > 2:
        if be == ep:
            out.append(f"{name}: val accuracy was still improving at the last epoch ({ep}); more epochs may help.")
        elif be <= ep // 2:
            out.append(f"{name}: val accuracy peaked at epoch {be} of {ep}; later epochs did not help.")
    n_cls = summary.get("classes")
    best = summary.get("best_val_acc")
    if n_cls and best is not None and best >= 0 and best < 1.0 / n_cls + 0.1:
        out.append(f"{name}: best val accuracy {_pct(best)} is close to chance ({_pct(1.0 / n_cls)} for "
                   f"{n_cls} classes): the model learned little.")
    return out


def probe_verdict(mode: str, summary: dict) -> str | None:
    """When a run's best model is its head warm-up (epoch 0), a sentence that says so: a winner at epoch 0 won
    with a frozen backbone, not by fine-tuning."""
    if not summary.get("head_warmup") or summary.get("best_epoch") != 0:
        return None
    ran = summary.get("epochs_run") or summary.get("epochs")
    owner = mode + ("'" if mode.endswith("s") else "'s")  # all-layers' best model
    return (f"{owner} best model is its head warm-up: fine-tuning did not improve it ({ran} fine-tuning "
            f"epoch{'s' if ran != 1 else ''}, none above the probe's {_pct(summary.get('best_val_acc'))})")


def compare_reading(summaries: dict[str, dict]) -> list[str]:
    """Which mode won, by how much, at what time cost, and over-fitting signs."""
    modes = sorted(summaries, key=lambda m: -(summaries[m].get("best_val_acc") or 0))
    if not modes:
        return []
    win = modes[0]
    w = summaries[win]
    out = []
    s = f"<b>{_e(win)}</b> won with a best val accuracy of {_pct(w['best_val_acc'])}"
    if len(modes) > 1:
        parts = [f"{100 * (w['best_val_acc'] - summaries[m]['best_val_acc']):.1f} points ahead of {_e(m)} "
                 f"({_pct(summaries[m]['best_val_acc'])})" for m in modes[1:]]
        s += ", " + " and ".join(parts)
    out.append(s + ".")
    out += [_e(v) + "." for v in (probe_verdict(m, summaries[m]) for m in modes) if v]
    if len(modes) > 1 and abs(w["best_val_acc"] - summaries[modes[1]]["best_val_acc"]) < 0.01:
        out.append(f"The margin over {_e(modes[1])} is under one point: on a validation set this size "
                   f"the two are effectively tied.")
    t_win = w.get("train_seconds") or 0
    times = []
    for m in modes[1:]:
        t = summaries[m].get("train_seconds") or 0
        if t_win > 0 and t > 0:
            r = t / t_win
            times.append(f"{_e(m)} {t:.0f} s ({r:.1f}x as long)" if r >= 1 else f"{_e(m)} {t:.0f} s ({1 / r:.1f}x faster)")
    if times:
        out.append(f"Training time: {_e(win)} {t_win:.0f} s; " + ", ".join(times) + ".")
    fastest = min(modes, key=lambda m: summaries[m].get("train_seconds") or 1e18)
    if fastest != win:
        f = summaries[fastest]
        out.append(f"The fastest mode, {_e(fastest)}, reached {_pct(f['best_val_acc'])} in "
                   f"{f.get('train_seconds', 0):.0f} s.")
    for m in modes:
        out += [_e(x) for x in fit_reading({**summaries[m], "mode": m})]
    if "scratch" in summaries and "scratch" != win:
        out.append("Training from scratch usually needs far more images and epochs than transfer learning; "
                   "a large gap to the pretrained modes is expected on small datasets.")
    return out


# ---------------------------------------------------------------- sections

def _setup_section(run_dir: Path) -> tuple[list[str], dict | None]:
    summary = _read_json(run_dir / "summary.json")
    args = _read_yaml(run_dir / "args.yaml") or {}
    if not summary and not args:
        return [], None
    s = summary or {}
    rows = [["data", args.get("data", "")], ["architecture", s.get("arch", args.get("arch", ""))],
            ["mode", s.get("mode", args.get("mode", ""))], ["weights", s.get("weights", args.get("weights", ""))],
            ["epochs", args.get("epochs", s.get("epochs", ""))],
            ["optimizer", f"{args.get('optimizer', '')} lr={args.get('lr', '')} wd={args.get('weight_decay', '')} "
                          f"scheduler={args.get('scheduler', '')}"],
            ["batch size / image size", f"{args.get('batch_size', '')} / {args.get('img_size', '')} px"],
            ["images (train / val)", f"{s.get('train_images', '?')} / {s.get('val_images', '?')}"],
            ["classes", s.get("classes", "")],
            ["trainable / total parameters", f"{s.get('trainable_params', 0):,} / {s.get('total_params', 0):,}"
             if s else ""],
            ["device", f"{s.get('device', args.get('device', ''))} amp={s.get('amp', args.get('amp', ''))}"],
            ["training time", f"{s.get('train_seconds', '?')} s ({s.get('images_per_second', '?')} img/s)"],
            ["seed", args.get("seed", "")]]
    out = ["<h2>Setup</h2>", _table([r for r in rows if r[1] not in ("", None)], numeric_from=99)]
    if summary:
        out.append(f'<div class="grid"><div class="card">best val accuracy<div class="big">'
                   f'{_pct(s.get("best_val_acc"))}</div>at epoch {_e(s.get("best_epoch"))} of {_e(s.get("epochs"))}'
                   + (f' (stopped after {_e(s.get("epochs_run"))})' if s.get("stopped_early") else "") +
                   f'</div><div class="card">final train / val accuracy<div class="big">{_pct(s.get("final_train_acc"))}'
                   f' / {_pct(s.get("final_val_acc"))}</div></div></div>')
    return out, summary


def _training_section(run_dir: Path, summary: dict | None) -> list[str]:
    out = []
    if (run_dir / "curves.png").is_file():
        out += ["<h2>Training curves</h2>", _img(run_dir / "curves.png", "training curves")]
    rows = read_csv(run_dir / "results.csv") if (run_dir / "results.csv").is_file() else []
    if summary:
        reading = fit_reading(summary, rows)
        if reading:
            out.append('<div class="reading"><ul>' + "".join(f"<li>{_e(r)}</li>" for r in reading) + "</ul></div>")
    if rows:
        shown = rows if len(rows) <= 12 else rows[:3] + rows[-9:]
        crop = "train_size" in rows[0]  # --progressive-resize: the training crop changes by epoch
        out.append(_table([[r["epoch"], _num(r.get("train_loss")), _num(r.get("train_acc")), _num(r.get("val_loss")),
                            _num(r.get("val_acc")), _num(r.get("lr"), 6), _num(r.get("seconds"), 1)]
                           + ([r.get("train_size", "")] if crop else []) for r in shown],
                          ["epoch", "train loss", "train acc", "val loss", "val acc", "lr", "seconds"]
                          + (["train crop px"] if crop else [])))
    return out


def _eval_section(folder: Path, m: dict) -> list[str]:
    out = [f"<h2>Evaluation: {_e(m.get('split', ''))} split</h2>",
           f"<p>{_e(m.get('num_samples'))} images from <code>{_e(m.get('data', ''))}</code>, checkpoint "
           f"<code>{_e(m.get('checkpoint', ''))}</code> (epoch {_e(m.get('epoch'))}); "
           f"{_e(m.get('mistakes', '?'))} mistakes.</p>"]
    cards = [("accuracy", _pct(m.get("accuracy"))), ("macro F1", _num(m["macro"]["f1"], 3)),
             ("macro ROC-AUC", _num(m["macro"].get("roc_auc"), 3)), ("macro AP", _num(m["macro"].get("ap"), 3))]
    out.append('<div class="cards">' + "".join(f'<div class="card">{_e(k)}<div class="big">{_e(v)}</div></div>'
                                              for k, v in cards) + "</div>")
    rows = [[f"top-{k} accuracy", _num(v)] for k, v in m.get("top_k_accuracy", {}).items()]
    for avg in ("macro", "weighted"):
        for k in ("precision", "recall", "f1"):
            rows.append([f"{avg} {k}", _num(m[avg][k])])
    rows += [["macro ROC-AUC (one vs rest)", _num(m["macro"].get("roc_auc"))],
             ["macro average precision", _num(m["macro"].get("ap"))]]
    if m.get("ece") is not None:
        rows.append([f"ECE, {m.get('ece_bins', 15)} bins (temperature {_num(m.get('temperature'), 3)})", _num(m["ece"])])
    if m.get("ece_uncalibrated") is not None:
        rows.append(["ECE as trained (temperature 1)", _num(m["ece_uncalibrated"])])
    if m.get("unknown"):
        u = m["unknown"]
        rows.append([f"answered unknown ({u['score']} below {_num(u['threshold'])})", _pct(u["share"])])
    out += ["<h3>Metrics</h3>", _table(rows, ["metric", "value"])]
    pc = m.get("per_class", {})
    out.append(_table([[c, _num(v["precision"], 3), _num(v["recall"], 3), _num(v["f1"], 3), v["support"],
                        _num(v.get("ap"), 3), _num(v.get("roc_auc"), 3)] for c, v in pc.items()],
                      ["class", "precision", "recall", "F1", "support", "AP", "ROC-AUC"]))
    out += ["<h3>Confusion matrix</h3>", _img(folder / "confusion_matrix.png", "confusion matrix")]
    out += ['<div class="grid">', _img(folder / "per_class.png", "F1 per class"), "</div>"]
    if (folder / "pr_curves.png").is_file():
        out += ["<h3>Precision-recall and ROC curves</h3>", '<div class="grid">',
                _img(folder / "pr_curves.png", "PR curves"), _img(folder / "roc_curves.png", "ROC curves"), "</div>"]
    pairs = _read_json(folder / "confused_pairs.json") or []
    out.append("<h3>Most confident mistakes</h3>")
    if pairs:
        out.append(_table([[p["true"], p["predicted"], p["count"],
                            ", ".join(Path(f["path"]).name for f in p["files"][:4]) +
                            (" ..." if len(p["files"]) > 4 else "")] for p in pairs[:12]],
                          ["true", "predicted as", "count", "files (most confident first)"], numeric_from=2,
                          numeric_to=3))
    out.append(_img(folder / "mistakes.png", "mistakes"))
    if (folder / "reliability.png").is_file():
        out += ["<h3>Calibration</h3>", "<p>Accuracy against confidence: on the diagonal, a 0.8 confidence "
                "is right 80 % of the time. <code>transferlearn calibrate RUN</code> fits a temperature that "
                "brings the curve there.</p>", _img(folder / "reliability.png", "reliability diagram")]
    if (folder / "features_2d.png").is_file():
        out += ["<h3>Feature map</h3>", "<p>Penultimate-layer features of each image projected to 2-D; "
                "well-separated colours mean the backbone separates the classes.</p>",
                _img(folder / "features_2d.png", "2-D feature map")]
        if (folder / "features_2d.html").is_file():
            out.append('<p><a href="features_2d.html">interactive version (features_2d.html)</a></p>')
    return out


def write_report(folder: str | Path, run_dir: str | Path | None = None) -> Path:
    """report.html in `folder` from a run folder's files and/or an evaluation's files found there."""
    folder = Path(folder)
    run_dir = Path(run_dir) if run_dir else folder
    body, summary = _setup_section(run_dir)
    body += _training_section(run_dir, summary)
    m = _read_json(folder / "metrics.json")
    if m:
        body += _eval_section(folder, m)
    elif summary:
        body.append("<p>No evaluation yet: <code>transferlearn eval " + _e(run_dir) +
                    " --data DATA</code> adds metrics, confusion matrix and mistakes to this report.</p>")
    s = summary or {}
    title = f"transferlearn report: {run_dir.name}"
    sub = " | ".join(x for x in (s.get("arch") or (m or {}).get("arch"), s.get("mode") or (m or {}).get("mode"),
                                 f"generated {_now()}") if x)
    return _write(folder / "report.html", _page(title, sub, body))


def write_compare_report(folder: str | Path) -> Path:
    """report.html for a `compare` folder: the modes side by side and a plain-language reading."""
    folder = Path(folder)
    summ = _read_json(folder / "summary.json") or {}
    modes: dict = summ.get("modes", {})
    body = []
    if modes:
        body.append('<h2>Reading</h2><div class="reading"><ul>' +
                    "".join(f"<li>{r}</li>" for r in compare_reading(modes)) + "</ul></div>")
        best = summ.get("best_mode")
        rows = []
        for mname, s in modes.items():
            rows.append([Markup(f"<b>{_e(mname)}</b>" if mname == best else _e(mname)), _pct(s.get("best_val_acc")),
                         s.get("best_epoch"), _pct(s.get("final_train_acc")), _pct(s.get("final_val_acc")),
                         f"{s.get('train_seconds', 0):.1f}", s.get("images_per_second"),
                         f"{s.get('trainable_params', 0):,}"])
        body += ["<h2>Modes side by side</h2>",
                 _table(rows, ["mode", "best val acc", "best epoch", "final train acc", "final val acc",
                               "train seconds", "img/s", "trainable params"])]
        first = next(iter(modes.values()))
        args = _read_yaml(Path(first.get("run_dir", "")) / "args.yaml") or {}
        counts = {m: s.get("epochs") for m, s in modes.items()}
        epochs = (f"{next(iter(counts.values()))} epochs" if len(set(counts.values())) == 1 else
                  "epochs " + ", ".join(f"{m} {n}" for m, n in counts.items()) + " (each mode's default)")
        body.append(f"<p>Same data and seed for every mode: <code>{_e(args.get('data', ''))}</code>, "
                    f"{_e(first.get('arch', ''))}, {_e(epochs)}, batch "
                    f"{_e(args.get('batch_size', ''))}, {_e(first.get('train_images', ''))} train / "
                    f"{_e(first.get('val_images', ''))} val images, {_e(first.get('classes', ''))} classes, "
                    f"device {_e(first.get('device', ''))}.</p>")
    body.append(_img(folder / "comparison.png", "comparison"))
    cards = []
    for mname, s in modes.items():
        rd = Path(s.get("run_dir", folder / mname))
        if not rd.is_absolute() and not rd.exists():
            rd = folder / mname
        m = _read_json(rd / "metrics.json")
        extra = (f"<br>eval accuracy {_pct(m.get('accuracy'))}, macro F1 {_num(m['macro']['f1'], 3)}" if m else "")
        link = f' <a href="{_e(rd.name)}/report.html">full report</a>' if (rd / "report.html").is_file() else ""
        cards.append(f'<div class="card{" win" if mname == summ.get("best_mode") else ""}"><h3>{_e(mname)}</h3>'
                     f"best val {_pct(s.get('best_val_acc'))} at epoch {_e(s.get('best_epoch'))}, "
                     f"{s.get('train_seconds', 0):.0f} s{extra}{link}"
                     f"{_img(rd / 'curves.png', mname + ' curves')}"
                     f"{_img(rd / 'confusion_matrix.png', mname + ' confusion matrix')}</div>")
    if cards:
        body += ["<h2>Per-mode training curves</h2>", '<div class="grid">' + "".join(cards) + "</div>"]
    first = next(iter(modes.values()), {})
    sub = f"{first.get('arch', '')} | {len(modes)} modes | generated {_now()}"
    return _write(folder / "report.html", _page(f"transferlearn comparison: {folder.name}", sub, body))
