"""Where transferlearn keeps what it can rebuild (decoded images, datasets, exported backbones, timings).

Its own module, free of torch, so that `transferlearn info` can name the folder without importing torch.
"""
from __future__ import annotations

import os
from pathlib import Path


def default_cache_root() -> Path:
    return Path(os.environ.get("TRANSFERLEARN_CACHE", Path.home() / ".cache" / "transferlearn"))
