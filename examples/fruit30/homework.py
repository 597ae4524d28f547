"""The fruit30 assignment's command-line form, as a thin wrapper over transferlearn.train.

    python examples/fruit30/fruit_last_layer.py --data_dir ../fruit30_split --batch_size 128 \
        --epochs 60 --output_dir ../checkpoint/fruit30_pytorch_C1.pth

--output_dir is, as in the assignment, the checkpoint file to write (C1 last layer, C2 all layers,
C3 from scratch). The full run folder (curves, results.csv, report) goes to runs/fruit30/<mode>.
"""
from __future__ import annotations

import argparse
import sys

import transferlearn


def run(mode: str, default_output: str) -> None:
    ap = argparse.ArgumentParser(description=f"fruit30, mode {mode}")
    ap.add_argument("--data_dir", default="../fruit30_split")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--output_dir", default=default_output, help="checkpoint file to write")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--workers", default="auto")
    a = ap.parse_args()
    try:
        transferlearn.train(data=a.data_dir, mode=mode, arch=a.arch, batch_size=a.batch_size, epochs=a.epochs,
                            lr=a.lr, workers=a.workers, output=a.output_dir, project="runs/fruit30", name=mode)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
