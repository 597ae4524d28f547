"""`transferlearn tune`: a hyperparameter search with Optuna (TPE sampler; median or ASHA pruning on each epoch's
val accuracy). Every trial is a run folder under TUNE/trials/; the study lives in TUNE/tune.db (SQLite), so a
stopped or killed search continues with `--resume TUNE` without redoing a finished trial (an interrupted one is
tried again with the same values).

Trial 0 is the defaults (the search's values at the mode's defaults), so the report says what the search gained.
Last-layer trials share one extraction of the frozen features (train.features.remembered_features): a trial
trains a head for seconds. All-layers trials read the on-disk decode cache and share the head warm-up's features;
the pruner stops the unpromising ones after a few epochs. The options are chosen on the val split, so its
accuracy of the best trial is optimistic: `--split test` evaluates the best and the defaults on DATA/test/.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import yaml

from ..data import find_splits, is_small, split_folders
from ..errors import OptionsFileError, TuneError
from ..runs import RunLock, claim_run_dir, write_json, write_yaml
from ..runs import checkpoint as ckpt_io
from ..train.callbacks import Callback, CSVLogger, RunFiles
from ..train.config import TrainConfig, config_fields
from .space import Param, build_space, parse_param

PRUNERS = ("auto", "median", "asha", "none")
SPLITS = ("val", "test")


class ReportEpochs(Callback):
    """Each evaluated epoch's val accuracy to Optuna; the pruner may stop the trial there."""

    def __init__(self, trial):
        self.trial = trial

    def on_epoch_end(self, trainer, row):
        import optuna
        if row.get("val_acc") is None:
            return
        self.trial.report(row["val_acc"], row["epoch"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {row['epoch']} (val acc {row['val_acc']:.4f})")


class BestWeights(Callback):
    """The trial's best.pt, kept in memory and written once at the end: a last-layer epoch takes milliseconds,
    a checkpoint on disk longer. The search then keeps the files of the best trial and the defaults only."""

    def __init__(self):
        self.best = None

    def on_epoch_end(self, trainer, row):
        if row.get("improved"):
            self.best = {**trainer.meta(), "model": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
                         "epoch": row["epoch"], "metrics": {k: v for k, v in row.items() if k != "improved"}}

    def on_fit_end(self, trainer, summary):
        if self.best is not None:
            ckpt_io.save(self.best, trainer.run_dir / "best.pt")


def param_raw(p: Param):
    """A Param as its YAML form (tune.yaml keeps the space a search was started with)."""
    if p.kind == "choice":
        return list(p.choices)
    if p.kind == "fixed":
        return p.value
    return {"low": p.low, "high": p.high, "log": p.log, **({"step": p.step} if p.step else {})}


def suggest(trial, p: Param):
    if p.kind == "fixed":
        return p.value
    if p.kind == "choice":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)


def check_space(cfg: TrainConfig, space: dict[str, Param], source: str) -> None:
    """Every choice and both ends of every range must make a valid run: found now, not in trial 12."""
    for p in space.values():
        values = p.choices if p.kind == "choice" else (p.value,) if p.kind == "fixed" else (p.low, p.high)
        for v in values:
            v = int(v) if p.kind == "int" else v
            try:
                replace(cfg, **{p.name: v}).resolved()
            except (ValueError, TypeError) as e:
                raise OptionsFileError(f"{source}: {p.name}: {v!r} does not make a valid run: {e}") from None


def start(cfg: TrainConfig, changes: dict | None, split: str, source: str) -> tuple[TrainConfig, dict[str, Param]]:
    """Check the options, the data and the space before anything is written."""
    if split not in SPLITS:
        raise TuneError(f"--split {split}: choose val or test")
    resolved = cfg.resolved()
    find_splits(cfg.data, cfg.val_split, cfg.seed)
    if split == "test" and "test" not in split_folders(cfg.data):
        raise TuneError(f"--split test: {cfg.data} has no test/ folder; make one with `transferlearn data split`, or "
                        f"report on val (the split the options are chosen on)")
    space = build_space(cfg.mode, resolved.img_size, is_small(resolved.img_size), changes, source, config_fields())
    check_space(cfg, space, source)
    return cfg, space


def finished(trial) -> bool:
    """Counts towards --trials: complete, pruned, or failed by itself (not stopped by Ctrl-C or a kill)."""
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and not trial.user_attrs.get("interrupted"))


def tune(cfg: TrainConfig | None = None, trials: int | None = None, timeout: float | None = None,
         space: dict | None = None, pruner: str = "auto", split: str = "val", resume: str | None = None,
         source: str = "space", log=print, **overrides) -> dict:
    """Search the training options of `cfg` (or continue the search in folder `resume`) until the study has
    `trials` finished trials (default 20; resumed: as started) or `timeout` seconds have passed. `space`: changes to the mode's default space
    (tuning/space.py). Returns the search's summary (also TUNE/summary.json)."""
    import optuna
    import torch

    from ..train.features import remembered_features
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's line is ours; a failure is named below
    if resume:
        folder = Path(resume)
        if not (folder / "tune.yaml").is_file():
            raise TuneError(f"--resume {folder}: not a tune folder (no tune.yaml)")
        saved = yaml.safe_load((folder / "tune.yaml").read_text(encoding="utf-8"))
        cfg = TrainConfig(**saved["config"])
        params = {k: parse_param(k, v, "tune.yaml") for k, v in saved["space"].items()}
        pruner, split, trials = saved["pruner"], saved["split"], trials or saved["trials"]
    else:
        cfg, trials = TrainConfig(**{**asdict(cfg or TrainConfig()), **overrides}), trials or 20
        if pruner not in PRUNERS:
            raise TuneError(f"--pruner {pruner}: choose one of {', '.join(PRUNERS)}")
        cfg, params = start(cfg, space, split, source)
        if pruner == "auto":  # a head on cached features: a trial costs seconds, and pruning after its first epochs
            pruner = "none" if cfg.resolved().feature_cache else "median"  # cut good slow starters (docs/tune.md)
        folder = claim_run_dir(cfg.project, cfg.name or "tune", cfg.exist_ok)
        write_yaml(folder / "tune.yaml", {"config": asdict(cfg), "space": {k: param_raw(p) for k, p in params.items()},
                                          "pruner": pruner, "split": split, "trials": trials})
    if not trials or trials < 1:
        raise TuneError(f"--trials {trials}: give at least 1")
    lock = RunLock(folder).acquire()
    study = optuna.create_study(study_name="tune", storage=f"sqlite:///{(folder / 'tune.db').resolve()}",
                                load_if_exists=True, direction="maximize", pruner=make_pruner(pruner))
    past = study.get_trials(deepcopy=False)
    study.sampler = optuna.samplers.TPESampler(seed=cfg.seed + len(past))  # a resumed search draws new values
    if not past:
        enqueue_defaults(study, cfg, params)
    retry_interrupted(study, past)
    remaining = trials - sum(finished(t) for t in past)
    t0, stopped = time.perf_counter(), False
    if past:
        log(f"tune {folder}: {sum(finished(t) for t in past)} finished trials kept; {max(remaining, 0)} to run")
    else:
        log(f"tune {folder}: {trials} trials of {cfg.mode} {cfg.arch} on {cfg.data}, searching "
            + "; ".join(p.describe() for p in params.values() if p.kind != "fixed"))
    threads = torch.get_num_threads()
    if cfg.resolved().feature_cache:  # a head on cached features: steps so small that a second OpenMP thread only
        torch.set_num_threads(1)      # waits (an epoch of flowers' head: 0.15 s on 1 thread, 4.5 s on 2, busy CPU)
    try:
        if remaining > 0:
            with remembered_features():
                study.optimize(lambda t: run_trial(t, cfg, params, folder, study, log), n_trials=remaining,
                               timeout=timeout, catch=(Exception,))
    except KeyboardInterrupt:
        stopped = True
    finally:
        lock.release()
        torch.set_num_threads(threads)
    from .results import write_results
    return write_results(study, cfg, params, folder, split, time.perf_counter() - t0, stopped, log)


def make_pruner(name: str):
    import optuna
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)  # the first 3 trials, epoch 1 always run


def enqueue_defaults(study, cfg: TrainConfig, params: dict[str, Param]) -> None:
    """Trial 0: each searched option at the mode's default, where the space holds it."""
    resolved = cfg.resolved()
    values = {p.name: getattr(resolved, p.name) for p in params.values() if p.kind != "fixed"}
    inside = {k: v for k, v in values.items() if params[k].contains(v)}
    study.enqueue_trial(inside, user_attrs={"defaults": len(inside) == len(values)})


def retry_interrupted(study, past: list) -> None:
    """A trial stopped by Ctrl-C or a kill (left RUNNING in the storage) is run again with its values, once."""
    retried = {t.user_attrs.get("retry_of") for t in past}
    for t in past:
        stopped = t.state.name == "RUNNING" or (t.state.name == "FAIL" and t.user_attrs.get("interrupted"))
        if stopped and t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, "defaults": t.user_attrs.get("defaults")})


def run_trial(trial, cfg: TrainConfig, params: dict[str, Param], folder: Path, study, log) -> float:
    """One trial: a run in TUNE/trials/trial-NNN with the trial's values; returns its best val accuracy."""
    import optuna

    from ..train import Trainer
    values = {p.name: suggest(trial, p) for p in params.values()}
    run_cfg = replace(cfg, **values, project=str(folder / "trials"), name=f"trial-{trial.number:03d}", exist_ok=True,
                      resume=None, output=None, quiet=True)
    shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    lines, t0 = [], time.perf_counter()  # the run's own lines go to its train.log
    trainer = Trainer(run_cfg, callbacks=[RunFiles(), CSVLogger(), BestWeights(), ReportEpochs(trial)], log=lines.append)
    try:
        trainer.setup()
        trial.set_user_attr("run_dir", str(trainer.run_dir))
        summary = trainer.fit().finish()
    except optuna.TrialPruned as e:
        log(f"trial {trial.number}: {e} | {shown}")
        raise
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        raise
    except Exception as e:
        msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        trial.set_user_attr("error", msg)
        log(f"trial {trial.number} failed: {msg} | {shown} (the search goes on)")
        raise
    finally:
        seconds = round(time.perf_counter() - t0, 2)
        trial.set_user_attr("seconds", seconds)
        if getattr(trainer, "run_dir", None) is not None and trainer.run_dir.is_dir():
            (trainer.run_dir / "train.log").write_text("\n".join(map(str, lines)) + "\n", encoding="utf-8")
    write_json(trainer.run_dir / "summary.json", summary)
    trial.set_user_attr("best_epoch", summary["best_epoch"])
    trial.set_user_attr("epochs_run", summary["epochs_run"])
    value = summary["best_val_acc"]
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    best = max(done, key=lambda t: t.value, default=None)
    mark = " *" if best is None or value > best.value else ""
    log(f"trial {trial.number}: val acc {value:.4f}{mark} (epoch {summary['best_epoch']}) | {shown} | {seconds:.1f}s")
    return value
