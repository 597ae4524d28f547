"""The search space of `transferlearn tune`: the default per mode, and a small YAML file that changes it.

A space maps training options (TrainConfig's names) to what a trial may give them:
    lr: {low: 1.0e-4, high: 3.0e-2, log: true}   a float range (log: sampled on a log scale)
    epochs: {low: 5, high: 30}                   an int range (both ends ints); `step: 5` for a grid
    augment: [light, standard]                   choices
    batch_size: 64                               a fixed value for every trial
    head_warmup: null                            not searched: the mode's default (or the command line's)
A file's keys replace the default's and add to them. No torch and no optuna here: `tune --help` prints the default.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionsFileError

# options that say where and how a search runs, not how a model is trained: never searched
NOT_SEARCHED = ("data", "mode", "project", "name", "exist_ok", "output", "resume", "quiet", "device", "workers",
                "cache_dir", "dist_timeout", "checkpoint_steps", "imbalance_warn", "compile")

# The default: what most changes a run's accuracy at a cost a search can pay. A last-layer trial trains a head on
# features extracted once (seconds); the options that change the features (augment, aug_views, train_size) are
# not searched there by default, since each value costs one more extraction (--space can add them).
DEFAULT_SPACES = {
    "last-layer": {"lr": {"low": 1e-4, "high": 3e-2, "log": True},
                   "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
                   "label_smoothing": {"low": 0.0, "high": 0.2},
                   "epochs": {"low": 5, "high": 30}},
    "all-layers": {"lr": {"low": 3e-5, "high": 3e-3, "log": True},
                   "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
                   "label_smoothing": {"low": 0.0, "high": 0.2},
                   "epochs": {"low": 3, "high": 10},
                   "augment": ["light", "standard"],
                   "head_warmup": [0, 25],
                   "train_size": "scaled"},  # the img size x 4/7, 5/7 and 1 (128, 160, 224 at 224 px)
    "scratch": {"lr": {"low": 1e-4, "high": 1e-2, "log": True},
                "weight_decay": {"low": 1e-5, "high": 1e-2, "log": True},
                "label_smoothing": {"low": 0.0, "high": 0.2},
                "epochs": {"low": 5, "high": 30},
                "augment": ["light", "standard", "strong"]},
}


@dataclass(frozen=True)
class Param:
    """One searched option: kind float | int | choice | fixed."""
    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    value: object = None

    def contains(self, v) -> bool:
        if self.kind == "choice":
            return v in self.choices
        if self.kind == "fixed":
            return v == self.value
        return isinstance(v, (int, float)) and self.low <= v <= self.high

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name}: one of {', '.join(map(str, self.choices))}"
        if self.kind == "fixed":
            return f"{self.name}: {self.value}"
        return f"{self.name}: {self.low:g} to {self.high:g}{' (log)' if self.log else ''}{' step %g' % self.step if self.step else ''}"


def train_sizes(img_size: int) -> list[int]:
    """The default space's training crops: 4/7, 5/7 and all of the img size, multiples of 8."""
    return sorted({max(8, int(round(img_size * f / 8)) * 8) for f in (4 / 7, 5 / 7)} | {img_size})


def load_space_file(path: str | Path) -> dict:
    from ..runs import read_yaml_mapping
    return read_yaml_mapping(path, "--space", "give a YAML file such as `lr: {low: 1.0e-4, high: 1.0e-2, log: true}`",
                             "give a mapping of option: range")


def build_space(mode: str, img_size: int, small: bool, changes: dict | None = None, source: str = "space",
                fields: set[str] | None = None) -> dict[str, Param]:
    """The mode's default space with `changes` (a --space file's mapping, or options typed on the command line)
    applied; every entry checked. `small`: images of 32 px or less, which train at their own size."""
    raw = dict(DEFAULT_SPACES[mode])
    if raw.get("train_size") == "scaled":
        raw["train_size"] = None if small else train_sizes(img_size)
    changes = dict(changes or {})
    unknown = sorted(str(k) for k in changes if fields is not None and k not in fields)
    if unknown:
        raise OptionsFileError(f"{source}: unknown key(s) {', '.join(unknown)}; the keys are train's options with _ "
                               f"for - (lr, weight_decay, label_smoothing, epochs, augment ...)")
    fixed_here = sorted(k for k in changes if k in NOT_SEARCHED)
    if fixed_here:
        raise OptionsFileError(f"{source}: {', '.join(fixed_here)} cannot be searched; give it on the command line")
    raw.update(changes)
    return {k: parse_param(k, v, source) for k, v in raw.items() if v is not None}


def number(v, where: str) -> float:
    """A YAML number; PyYAML reads 1e-4 (no dot) as a string, so strings are converted too."""
    if isinstance(v, bool):
        raise OptionsFileError(f"{where}: {v!r} is not a number")
    try:
        return v if isinstance(v, (int, float)) else float(v)
    except (TypeError, ValueError):
        raise OptionsFileError(f"{where}: {v!r} is not a number") from None


def parse_param(name: str, v, source: str = "space") -> Param:
    where = f"{source}: {name}"
    if isinstance(v, list):
        if not v:
            raise OptionsFileError(f"{where}: an empty list of choices; give at least one value, or null to leave "
                                   f"{name} out of the search")
        return Param(name, "choice", choices=tuple(v))
    if not isinstance(v, dict):
        return Param(name, "fixed", value=v)
    extra = sorted(set(v) - {"low", "high", "log", "step"})
    if extra or "low" not in v or "high" not in v:
        raise OptionsFileError(f"{where}: a range is {{low: A, high: B}} with optional log: true and step: S "
                               f"(got {', '.join(map(str, v))})")
    low, high = number(v["low"], where), number(v["high"], where)
    if not low < high:
        raise OptionsFileError(f"{where}: empty range (low {low:g}, high {high:g}); give low < high, or one value to "
                               f"fix {name}")
    log = bool(v.get("log", False))
    if log and low <= 0:
        raise OptionsFileError(f"{where}: a log range needs low > 0 (got {low:g})")
    step = number(v["step"], where) if v.get("step") is not None else None
    if step is not None and (step <= 0 or log):
        raise OptionsFileError(f"{where}: step must be > 0 and cannot go with log: true")
    is_int = all(isinstance(x, int) and not isinstance(x, bool) for x in (v["low"], v["high"])) and \
        (step is None or float(step).is_integer())
    return Param(name, "int" if is_int else "float", low, high, log, step)


def describe_default(mode: str) -> str:
    """The default space in words, for --help."""
    out = []
    for k, v in DEFAULT_SPACES[mode].items():
        if v == "scaled":
            out.append(f"{k}: img size x 4/7, 5/7, 1")
        else:
            out.append(parse_param(k, v).describe())
    return "; ".join(out)
