"""When a run stops before its last epoch: two rules, both on val accuracy, both keeping best.pt.

- `--patience N`: the last N evaluations were no better than the best one before them (any mode).
- `--warmup-patience N` (all-layers with the head warm-up): fine-tuning's last N evaluations were no better
  than its best one before them, and every fine-tuning epoch is below the warm-up's probe (epoch 0).
  Fine-tuning starts from a fresh head, below the probe. Where it is still climbing (Fashion-MNIST, flowers:
  it passed the probe after 2-9 epochs, stalling at most 2 on the way: Fashion-MNIST on an AVX2 CPU stalled 2,
  was stopped, and would have passed the probe by 0.4 points 4 epochs later) it mostly runs on, and once it has
  passed the probe only --patience applies. Where it stalls below the probe (hymenoptera, 245 images: the
  probe is the best model), the remaining epochs cannot pay (docs/recipe.md, "The default").
"""
from __future__ import annotations


def converged(history: list[dict], patience: int) -> bool:
    """The last `patience` evaluations were no better than the best one before them."""
    accs = [r["val_acc"] for r in history if r.get("val_acc") is not None]
    return 0 < patience < len(accs) and max(accs[-patience:]) <= max(accs[:-patience])


def stalled_below_probe(history: list[dict], patience: int) -> bool:
    """Fine-tuning (epochs >= 1) stopped improving for `patience` evaluations while still below epoch 0 (a
    fine-tuning epoch that equals the probe has caught up: it is not below it)."""
    probe = [r["val_acc"] for r in history if r["epoch"] == 0 and r.get("val_acc") is not None]
    tuned = [r for r in history if r["epoch"] > 0]
    return (bool(probe) and converged(tuned, patience)
            and max(r["val_acc"] for r in tuned if r.get("val_acc") is not None) < probe[0])


def stop_reason(history: list[dict], patience: int, warmup_patience: int, epochs: int) -> str | None:
    """Why the run stops after its latest epoch (a sentence for the log), or None."""
    last = history[-1]["epoch"]
    if last >= epochs or history[-1].get("val_acc") is None:
        return None
    best = max((r for r in history if r.get("val_acc") is not None), key=lambda r: r["val_acc"])
    where = f"best {best['val_acc']:.4f} at epoch {best['epoch']}"
    if stalled_below_probe(history, warmup_patience):
        return (f"fine-tuning has not improved for {warmup_patience} evaluations and is still below the head "
                f"warm-up's probe ({where}): stopping after epoch {last} of {epochs} (--warmup-patience 0 trains "
                f"every epoch)")
    if converged(history, patience):
        return (f"val accuracy has not improved for {patience} evaluations ({where}): converged, stopping after "
                f"epoch {last} of {epochs} (--patience 0 trains every epoch)")
    return None
