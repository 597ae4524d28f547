"""Package faces that import a submodule only when one of its names is first used (PEP 562).

Why: `transferlearn --help` and `import transferlearn.data` must not pay for torch, timm or
matplotlib; a face lists where each public name lives, and the submodule is imported on first use.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys


def face(package: str, table: dict[str, tuple[str, ...]]):
    """-> (__getattr__, __dir__, __all__) for `package`, whose names live in the submodules that
    `table` maps to them: {"submodule": ("name", ...)}."""
    where = {name: sub for sub, names in table.items() for name in names}
    # A face must not hand out a name that is also one of the package's submodules: `from pkg import name`
    # would give the function or the module depending on what was imported before (Python binds a loaded
    # submodule as an attribute of its package). Refused when the face is built, so the clash cannot ship.
    submodules = {m.name for m in pkgutil.iter_modules(sys.modules[package].__path__)}
    clash = sorted(set(where) & submodules)
    if clash:
        raise ImportError(f"{package}: the face names {', '.join(clash)}, which "
                          f"{'is a submodule' if len(clash) == 1 else 'are submodules'} of the package too; "
                          f"rename the function or import it from its module")

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)  # the next look-up is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(where) | set(vars(sys.modules[package])))

    return __getattr__, __dir__, sorted(where)
