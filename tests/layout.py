"""The package's shape, read from its source with `ast` (nothing imported): which module imports
which, and the part (subpackage, or root module) each belongs to. Used by test_layout.py."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "transferlearn"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every transferlearn import in `path`,
    relative ones resolved; `from pkg import sub` is listed as pkg.sub where sub is a module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = modules()
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "transferlearn"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "transferlearn":
                continue
            names = [a.name for a in node.names]
            subs = [n for n in names if f"{target}.{n}" in known]
            found += [(f"{target}.{n}", [], node.lineno) for n in subs]
            rest = [n for n in names if n not in subs]
            if rest or not subs:
                found.append((target, rest, node.lineno))
    return found


def part(module: str) -> str:
    """transferlearn.data.files -> data; transferlearn.modes -> modes; transferlearn -> (top)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(top)"
