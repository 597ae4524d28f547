"""Old import paths, from before the subpackages, and where that code lives now.

`import transferlearn.predict` (say) gives the very module `transferlearn.inference.predict`, so
old code, pickles of old names and monkeypatches keep working; `transferlearn.trainer` and
`transferlearn.engine`, which gathered names from several modules, give a module that looks them
up in those (under their new names where RENAMED says so: `engine.evaluate` is `train.loop.validate`).
New code imports the new paths (docs/architecture.md).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

MOVED = {
    "transferlearn.files": "transferlearn.data.files",
    "transferlearn.cache": "transferlearn.data.cache",
    "transferlearn.evaluate": "transferlearn.evaluation.evaluate",
    "transferlearn.metrics": "transferlearn.evaluation.metrics",
    "transferlearn.visualize": "transferlearn.evaluation.visualize",
    "transferlearn.plots": "transferlearn.reporting.plots",
    "transferlearn.fonts": "transferlearn.reporting.fonts",
    "transferlearn.report": "transferlearn.reporting.report",
    "transferlearn.split": "transferlearn.datatools.split",
    "transferlearn.datasets": "transferlearn.datatools.get",
    "transferlearn.datastats": "transferlearn.datatools.stats",
    "transferlearn.demo": "transferlearn.datatools.demo",
    "transferlearn.predict": "transferlearn.inference.predict",
    "transferlearn.export": "transferlearn.inference.export",
    "transferlearn.explain": "transferlearn.inference.explain",
    "transferlearn.serve": "transferlearn.inference.serve",
    "transferlearn.mindspore": "transferlearn.models.mindspore",
}

# old module -> the modules its names now come from, looked up in this order
GATHERED = {
    "transferlearn.trainer": ("transferlearn.train.trainer", "transferlearn.train.compare", "transferlearn.train"),
    "transferlearn.engine": ("transferlearn.train.loop", "transferlearn.train.state", "transferlearn.train.precision"),
    "transferlearn.checkpoint": ("transferlearn.runs.checkpoint", "transferlearn.models.factory"),
    "transferlearn.datacheck": ("transferlearn.datatools.check", "transferlearn.datatools.quarantine"),
}

# old module -> {old name: its new name}, for names of a gathered module that were renamed
RENAMED = {
    "transferlearn.engine": {"evaluate": "validate"},  # one validation pass; `evaluate` is the eval command's
}


def new_name(old: str) -> str | None:
    """The module that `old` (a module path from before the subpackages) is now, or None."""
    for prefix, new in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return new + old[len(prefix):]
    return None


def gathered(old: str, sources: tuple[str, ...]) -> types.ModuleType:
    """A module whose names are looked up in `sources` (imported when first used)."""
    module = types.ModuleType(old, f"Moved: use {' or '.join(sources)}.")
    renamed = RENAMED.get(old, {})

    def __getattr__(name: str):
        for source in sources:
            value = getattr(importlib.import_module(source), renamed.get(name, name), module)
            if value is not module:
                return value
        raise AttributeError(f"{old} has no {name!r} (its code moved to {' / '.join(sources)})")

    module.__getattr__ = __getattr__
    return module


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of the old paths in MOVED and GATHERED."""

    def __init__(self):
        self.real_specs = {}

    def find_spec(self, name, path=None, target=None):
        if new_name(name) is None and name not in GATHERED:
            return None
        return importlib.util.spec_from_loader(name, self, is_package=new_name(name) in MOVED.values())

    def create_module(self, spec):
        if spec.name in GATHERED:
            return gathered(spec.name, GATHERED[spec.name])
        module = importlib.import_module(new_name(spec.name))
        self.real_specs[spec.name] = module.__spec__  # importlib overwrites __spec__ before exec_module
        return module

    def exec_module(self, module):
        if module.__name__ == module.__spec__.name:  # a gathered module: nothing to run
            return
        old = module.__spec__.name
        module.__spec__ = self.real_specs.pop(old)  # an alias: give the module its own spec back
        # a moved package's submodules that are loaded already get their old names now: importing one
        # through the finder would also set it as an attribute of the package, over a function of the
        # same name (transferlearn.mindspore.convert, the function, beside the module convert.py)
        for name, sub in list(sys.modules.items()):
            if name.startswith(module.__name__ + "."):
                sys.modules.setdefault(old + name[len(module.__name__):], sub)


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())  # ahead of the path finder, which would load a second copy
