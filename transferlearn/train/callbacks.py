"""Everything a run writes, as callbacks: args.yaml and classes.json, results.csv, TensorBoard, best.pt and
last.pt, console lines, curves, report and summary. The Trainer calls them on the main process only, so
under N processes each file is written once.

The protocol is four hooks; a callback overrides the ones it needs:
- on_fit_start(trainer)              after setup, before the first step (resumed runs too)
- on_epoch_end(trainer, row)         a finished epoch (row = its results.csv row), after validation
- on_checkpoint(trainer, ckpt)       a complete resume point (epoch end, every --checkpoint-steps, a stop)
- on_fit_end(trainer, summary)       the run is complete
"""
from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from ..runs import checkpoint as ckpt_io
from ..runs import RESULT_COLUMNS, TensorBoardLogger, write_csv, write_json, write_yaml


class Callback:
    def on_fit_start(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, row: dict) -> None: ...

    def on_checkpoint(self, trainer, ckpt: dict) -> None: ...

    def on_fit_end(self, trainer, summary: dict) -> None: ...


class RunFiles(Callback):
    """args.yaml (the resolved options) and classes.json."""

    def on_fit_start(self, trainer):
        write_yaml(trainer.run_dir / "args.yaml", asdict(trainer.cfg))
        write_json(trainer.run_dir / "classes.json", trainer.classes)


class Checkpointer(Callback):
    """best.pt when validation improves (weights and metadata only); last.pt at every resume point."""

    def on_epoch_end(self, trainer, row):
        if row.get("improved"):
            ckpt_io.save({**trainer.meta(), "model": trainer.state.evaluated().state_dict(), "epoch": row["epoch"],
                          "metrics": _metrics(row)}, trainer.run_dir / "best.pt")

    def on_checkpoint(self, trainer, ckpt):
        ckpt_io.save(ckpt, trainer.run_dir / "last.pt", keep_previous=True)


class CSVLogger(Callback):
    """results.csv, rewritten whole from the history each epoch: a resumed run never duplicates a row."""

    def on_epoch_end(self, trainer, row):
        path = trainer.run_dir / "results.csv"
        tmp = path.with_name(".results.csv.tmp")
        history = trainer.state.history
        # --progressive-resize: each epoch's training crop, since the curves cannot be read without it
        crop = ["train_size"] if any("train_size" in r for r in history) else []
        write_csv(tmp, history, RESULT_COLUMNS + crop)
        tmp.replace(path)


class TensorBoard(Callback):
    """Scalars per epoch. A resumed run purges events after its checkpoint's epoch, so none is doubled."""

    def __init__(self):
        self.tb = None

    def on_fit_start(self, trainer):
        purge = trainer.state.epoch + 1 if trainer.resumed else None
        self.tb = TensorBoardLogger(trainer.run_dir, purge_step=purge)

    def on_epoch_end(self, trainer, row):
        self.tb.log(row, row["epoch"])

    def on_fit_end(self, trainer, summary):
        self.close()

    def close(self):
        if self.tb is not None:
            self.tb.close()
            self.tb = None


class Console(Callback):
    """One line per epoch, and the run's first and last lines."""

    def on_fit_start(self, trainer):
        trainer.log(trainer.describe())

    def on_epoch_end(self, trainer, row):
        cfg = trainer.cfg
        val = (f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}{' *' if row.get('improved') else ''}"
               if "val_acc" in row else "val skipped")
        label = f"epoch {row['epoch']}/{cfg.epochs}" + (
            f" (head warm-up: {trainer.state.warmup['epochs']} epochs on frozen features; fine-tuning starts from "
            f"{'the warmed-up' if trainer.state.warmup.get('start') == 'keep' else 'a fresh'} head)"
            if row["epoch"] == 0 else "")
        crop = f"  crop {row['train_size']} px" if "train_size" in row else ""
        trainer.log(f"{label}{crop}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
                    f"  {val}  lr {row['lr']:.2e}  {row['seconds']:.1f}s")

    def on_fit_end(self, trainer, summary):
        trainer.log(f"best val acc {summary['best_val_acc']:.4f} at epoch {summary['best_epoch']} | "
                    f"{summary['wall_seconds']:.1f}s | results in {trainer.run_dir}")


class Artifacts(Callback):
    """curves.png, summary.json, report.html and the --output copy, when the run is complete."""

    def on_fit_end(self, trainer, summary):
        from ..reporting.plots import plot_curves
        from ..reporting.report import write_report
        cfg, run_dir = trainer.cfg, trainer.run_dir
        averaged = f" (val: the weights' moving average over {cfg.ema:g} epoch{'s' * (cfg.ema > 1)})" if cfg.ema else ""
        plot_curves(trainer.state.history, run_dir / "curves.png", title=f"{cfg.arch} {cfg.mode}{averaged}")
        write_json(run_dir / "summary.json", summary)
        report(write_report, run_dir, trainer.log)
        if cfg.output:
            out = Path(cfg.output)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / "best.pt", out)
            trainer.log(f"best checkpoint also written to {out}")


def report(writer, folder: Path, log=print) -> None:
    """report.html; a problem there is reported, never fatal to a finished training."""
    try:
        writer(folder)
    except Exception as e:  # pragma: no cover - defensive
        log(f"warning: could not write {folder / 'report.html'}: {type(e).__name__}: {e}")


def _metrics(row: dict) -> dict:
    return {k: v for k, v in row.items() if v is not None and k != "improved"}


def default_callbacks() -> list[Callback]:
    return [RunFiles(), Checkpointer(), CSVLogger(), TensorBoard(), Console(), Artifacts()]
