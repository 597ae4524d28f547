"""The architecture as tests: the layers point one way, modules stay short and keep their private
names, `--help` imports no torch, and the import paths from before the subpackages still work.
docs/architecture.md draws the same layers."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from layout import imports, module_name, modules, part

# part -> its layer in docs/architecture.md: a part imports only parts of lower layers
LAYER = {"errors": 0, "lazy": 0, "machine": 0, "data": 1, "runs": 1, "modes": 1, "models": 2, "reporting": 2,
         "train": 3, "evaluation": 3, "inference": 3, "datatools": 4, "tuning": 4, "cli": 5, "__main__": 6}
OUTSIDE = {"(top)": {"moved"}, "moved": set()}  # the package face, and the old import paths


def allowed(a: str, b: str) -> bool:
    return b in OUTSIDE[a] if a in OUTSIDE else b in LAYER and LAYER[b] < LAYER[a]


MAX_LINES = 400


def test_every_part_is_placed_in_a_layer():
    assert {part(m) for m in modules()} <= set(LAYER) | set(OUTSIDE)


def test_imports_point_down_the_layers_only():
    wrong = []
    for m, path in modules().items():
        for target, names, line in imports(path):
            a, b = part(m), part(target)
            if b == "(top)" and set(names) <= {"__version__"}:
                continue  # the version string, from the package itself
            if a != b and not allowed(a, b):
                wrong.append(f"{path.relative_to(path.parents[len(m.split('.')) - 1])}:{line} imports {target} "
                             f"({a} -> {b})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_private_name_is_imported_from_another_module():
    wrong = [f"{m} takes {n} from {t}" for m, path in modules().items() for t, names, _ in imports(path)
             for n in names if n.startswith("_") and n != "__version__" and t != m]
    assert not wrong, wrong


def test_no_module_is_longer_than_400_lines():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_layout_reader_sees_the_package():
    assert module_name(modules()["transferlearn.data.files"]) == "transferlearn.data.files"
    assert ("transferlearn.runs.checkpoint", [], 11) in [(t, n, 11) for t, n, _ in
                                                         imports(modules()["transferlearn.models.factory"])]


HELP_WITHOUT_TORCH = r"""
import contextlib, io, json, sys
from transferlearn.cli import build_parser, main
parser = build_parser()
sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
commands = [[]]
for name, p in sub.choices.items():
    commands.append([name])
    for a in p._actions:
        if a.__class__.__name__ == "_SubParsersAction":
            commands += [[name, s] for s in a.choices]
for argv in commands:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main([*argv, "--help"])
        except SystemExit:
            pass
heavy = sorted(m for m in ("torch", "torchvision", "timm", "matplotlib", "tensorboard", "sklearn")
               if m in sys.modules)
print(json.dumps({"commands": commands, "heavy": heavy}))
"""


def test_help_of_every_command_imports_no_torch():
    r = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert ["train"] in out["commands"] and ["data", "get"] in out["commands"] and len(out["commands"]) > 15
    assert out["heavy"] == [], f"--help imported {out['heavy']}"


OLD_PATHS = ["transferlearn.files", "transferlearn.cache", "transferlearn.evaluate", "transferlearn.metrics",
             "transferlearn.visualize", "transferlearn.plots", "transferlearn.fonts", "transferlearn.report",
             "transferlearn.split", "transferlearn.datasets", "transferlearn.datastats",
             "transferlearn.demo", "transferlearn.predict", "transferlearn.export", "transferlearn.explain",
             "transferlearn.serve", "transferlearn.mindspore", "transferlearn.mindspore.convert",
             "transferlearn.mindspore.ckptio"]


@pytest.mark.parametrize("old", OLD_PATHS)
def test_an_old_import_path_gives_the_moved_module_itself(old):
    from transferlearn.moved import new_name
    assert importlib.import_module(old) is importlib.import_module(new_name(old))


def test_old_paths_that_gathered_names_still_have_them():
    from transferlearn.checkpoint import load, load_model, save
    from transferlearn.datacheck import check, fix, undo
    from transferlearn.data import DatasetError, eval_transform, find_splits, load_rgb
    from transferlearn.engine import TrainState, evaluate, train_one_epoch
    from transferlearn.models import create_model, get_spec
    from transferlearn.runs import RunLock, write_csv
    from transferlearn.trainer import TrainConfig, compare, pick_device, train
    assert all(callable(f) for f in (check, fix, undo, load, load_model, save, eval_transform, find_splits, load_rgb, evaluate,
                                     train_one_epoch, create_model, get_spec, write_csv, compare, pick_device, train))
    assert issubclass(DatasetError, ValueError) and TrainState and RunLock and TrainConfig
    from transferlearn.mindspore import convert
    assert callable(convert)  # the function, though convert.py is also a module of that package
    with pytest.raises(ImportError, match="transferlearn.inference.export"):
        from transferlearn.mindspore import export_mindspore  # noqa: F401


def test_a_renamed_name_of_an_old_path_is_the_new_one():
    from transferlearn.engine import evaluate
    from transferlearn.train.loop import validate
    assert evaluate is validate  # train.loop.evaluate became validate: `evaluate` is the eval command's
    import transferlearn.train.loop as loop
    assert not hasattr(loop, "evaluate")


def test_public_api():
    import transferlearn
    from transferlearn.train import trainer  # noqa: F401  (importing the package must not hide the function)
    assert callable(transferlearn.train) and callable(transferlearn.compare)
    assert transferlearn.load_model.__name__ == "load_model" and transferlearn.Classifier.__name__ == "Classifier"
    assert transferlearn.TrainConfig().batch_size > 0 and callable(transferlearn.create_model)


# A public name that is also a submodule of its package: `from pkg import name` would give the function or the
# module depending on import order. The two kept on purpose are bound eagerly and tested above: the package
# transferlearn.train calls train() when called, and mindspore/__init__ imports convert() over convert.py.
NAME_IS_SUBMODULE_ON_PURPOSE = {("transferlearn", "train"), ("transferlearn.models.mindspore", "convert")}

FACE_NAMES_IN_A_FRESH_PROCESS = r"""
import importlib, json, pkgutil, sys
import transferlearn
wrong = []
for info in pkgutil.walk_packages(transferlearn.__path__, "transferlearn."):
    if not info.ispkg or info.name.startswith("transferlearn.cli"):
        continue
    pkg = importlib.import_module(info.name)
    subs = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    for name in getattr(pkg, "__all__", []):
        if name in subs:
            wrong.append([info.name, name])
print(json.dumps(wrong))
"""


def test_no_package_hands_out_a_name_of_its_own_submodules():
    """`transferlearn data check` once crashed: the datatools face gave the function `check` where the CLI
    imported the module check.py. Every package's public names are checked against its submodules."""
    r = subprocess.run([sys.executable, "-c", FACE_NAMES_IN_A_FRESH_PROCESS], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    wrong = {tuple(w) for w in json.loads(r.stdout.strip().splitlines()[-1])}
    assert wrong <= NAME_IS_SUBMODULE_ON_PURPOSE, f"public names that are also submodules: {sorted(wrong)}"
    import transferlearn
    assert {n for p, n in NAME_IS_SUBMODULE_ON_PURPOSE if p == "transferlearn"} <= set(transferlearn.__all__)


def test_a_face_refuses_a_name_of_its_own_submodules(tmp_path, monkeypatch):
    pkg = tmp_path / "facepkg"
    pkg.mkdir()
    (pkg / "tool.py").write_text("def tool():\n    return 1\n\ndef helper():\n    return 2\n")
    (pkg / "__init__.py").write_text("from transferlearn.lazy import face\n"
                                     "__getattr__, __dir__, __all__ = face(__name__, {'tool': ('tool', 'helper')})\n")
    (tmp_path / "okpkg").mkdir()
    (tmp_path / "okpkg" / "tool.py").write_text("def helper():\n    return 2\n")
    (tmp_path / "okpkg" / "__init__.py").write_text("from transferlearn.lazy import face\n"
                                                   "__getattr__, __dir__, __all__ = face(__name__, {'tool': ('helper',)})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="facepkg: the face names tool, which is a submodule"):
        importlib.import_module("facepkg")
    ok = importlib.import_module("okpkg")
    assert ok.helper() == 2 and ok.__all__ == ["helper"]
    for name in ("facepkg", "okpkg", "okpkg.tool"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("package, module", [("transferlearn.datatools", "check"), ("transferlearn.datatools", "get"),
                                             ("transferlearn.inference", "export"),
                                             ("transferlearn.evaluation", "evaluate"),
                                             ("transferlearn.train", "compare")])
def test_from_a_package_import_a_submodule_gives_the_module(package, module):
    r = subprocess.run([sys.executable, "-c", f"from {package} import {module} as m; import types; "
                                              f"assert isinstance(m, types.ModuleType), m; print(m.__name__)"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"{package}.{module}", r.stderr


def test_builtin_arch_names_are_the_zoos():
    from transferlearn.models import BUILTIN_ARCHS, list_archs
    assert sorted(BUILTIN_ARCHS) == list_archs()


def test_errors_share_one_base_and_keep_their_old_bases():
    from transferlearn import errors
    for name in ("DatasetError", "DatasetGetError", "WeightsError", "ModelError", "CheckpointError", "RunInUse",
                 "ResumeError", "MindSporeCheckpointError", "ImageTooLarge", "MissingExtra"):
        assert issubclass(getattr(errors, name), errors.TransferlearnError), name
    assert issubclass(errors.DatasetError, ValueError) and issubclass(errors.WeightsError, RuntimeError)
    from transferlearn.data import DatasetError
    from transferlearn.train.resume import ResumeError
    assert DatasetError is errors.DatasetError and ResumeError is errors.ResumeError


@pytest.mark.timing
def test_help_starts_in_half_a_second():
    """`transferlearn --help` and `train --help` cost under 0.5 s, interpreter start included: the CPU time
    of the fastest of three runs (its wall time on a busy machine also counts the neighbours' work)."""
    import resource
    for argv in (["--help"], ["train", "--help"]):
        best = float("inf")
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-m", "transferlearn", *argv], capture_output=True, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        assert best < 0.5, (argv, best)


def test_ci_runs_the_readme_test_command():
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    block = readme.split("Install and run the tests", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    ci = (root / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert block.strip() == ci
    assert block.startswith("bash scripts/setup.sh && ")
    # the selections add up to every test, each once
    assert [s.rsplit(" -m ", 1)[1] for s in block.split(" && ")[1:]] == ['"not slow and not timing"', "slow",
                                                                         '"timing and not slow"']


def _command_parsers():
    from transferlearn.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


def test_training_options_are_the_config_fields_with_its_defaults():
    """train/compare options and TrainConfig cannot drift: every field is an option of `train`, every
    option is a field (or compare's own), and what argparse fills in is TrainConfig's default."""
    from dataclasses import MISSING, fields

    from transferlearn.train.config import TrainConfig
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    parsers = _command_parsers()
    dests = {cmd: {a.dest for a in parsers[cmd]._actions} - {"help"} for cmd in ("train", "compare")}
    assert dests["train"] - set(defaults) == {"cfg"}, dests["train"] ^ set(defaults)  # --cfg FILE: options' source
    assert set(defaults) <= dests["train"], set(defaults) - dests["train"]
    assert dests["compare"] - set(defaults) == {"modes", "inits", "cfg"}
    for cmd in ("train", "compare"):
        ns = vars(parsers[cmd].parse_args([]))
        assert {k: ns[k] for k in defaults} == defaults


def test_training_options_state_no_default_of_their_own():
    """A default is stated once, in TrainConfig: cli/train.py gives none for an option that is a field."""
    import ast
    from dataclasses import fields
    from pathlib import Path

    from transferlearn.train.config import TrainConfig
    names = {f.name for f in fields(TrainConfig)}
    src = Path(modules()["transferlearn.cli.train"]).read_text(encoding="utf-8")
    stated = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            kw = {k.arg: k.value for k in node.keywords}
            flag = next((a.value for a in node.args if isinstance(a, ast.Constant)), "")
            dest = kw["dest"].value if "dest" in kw else flag.lstrip("-").replace("-", "_")
            if dest in names and "default" in kw:
                stated.append(f"{flag} (line {node.lineno})")
    assert not stated, f"state these defaults in TrainConfig, not in cli/train.py: {stated}"
