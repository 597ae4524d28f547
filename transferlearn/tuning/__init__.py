"""`transferlearn tune`: a search over training options, each trial a run (layer 4: it orchestrates train/).

- space.py    the default search space per mode and the YAML file that changes it (no torch, no optuna)
- search.py   the Optuna study: trials, pruning on each epoch's val accuracy, resume from TUNE/tune.db
- results.py  tune.csv, tune.png, the best options as args.yaml, summary.json and the report
"""
from ..lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "space": ("DEFAULT_SPACES", "build_space", "load_space_file"),
    "search": ("tune",),
})
