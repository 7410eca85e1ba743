"""The package's shape: one installed namespace, layers that point one way, light imports,
one error root, and every module's doctests run against the installed names."""

from __future__ import annotations

import ast
import doctest
import importlib
import json
import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import prefloop
from prefloop.core.errors import PrefloopError

from .conftest import ROOT

PACKAGES = ("prefloop.core", "prefloop.store", "prefloop.judge", "prefloop.training",
            "prefloop.annotate_app", "prefloop")
FOLDERS = {"core": "prefloop.core", "store": "prefloop.store", "judge": "prefloop.judge",
           "training": "prefloop.training", "annotate_app": "prefloop.annotate_app",
           "prefloop": "prefloop"}


def _modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        names.append(pkg)
        names += [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")
                  if not (pkg == "prefloop" and m.name.split(".")[1] in FOLDERS)]
    return sorted(set(names))


def test_the_folders_import_as_one_namespace_from_anywhere(tmp_path):
    (tmp_path / "store").mkdir()           # a user project with folders of the same names
    (tmp_path / "store" / "__init__.py").write_text("MINE = True\n")
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "__init__.py").write_text("MINE = True\n")
    code = ("import prefloop.store, prefloop.training, store, training, json; "
            "print(json.dumps([prefloop.store.__name__, prefloop.store.Store.__module__, "
            "store.MINE, training.MINE, hasattr(prefloop.store, 'MINE')]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == ["prefloop.store", "prefloop.store.db", True, True, False]


def test_a_built_wheel_installs_nothing_but_prefloop(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel, = tmp_path.glob("prefloop-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("prefloop-")}
    assert tops == {"prefloop"}
    assert {"prefloop/store/db.py", "prefloop/store/formats/hh.py", "prefloop/judge/modes.py",
            "prefloop/training/ppo.py", "prefloop/annotate_app/app.py", "prefloop/cli/__init__.py",
            "prefloop/judge/constitutions/default.yaml"} <= set(names)


@pytest.mark.parametrize("module", ["prefloop.judge", "prefloop.judge.batch", "prefloop.judge.backends",
                                    "prefloop.cli", "prefloop.annotate_app.app",
                                    "prefloop.store.counts", "prefloop.core.models", "prefloop.store.tracking"])
def test_torch_free_modules_import_no_torch(module):
    code = (f"import sys, json, {module}; "
            "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved to the namespace)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(ROOT).with_suffix("")
    package = [FOLDERS[rel.parts[0]], *rel.parts[1:-1]]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1])
                out.add(f"{base}.{node.module}" if node.module else base)
                out |= {f"{base}.{a.name}" for a in node.names} if not node.module else set()
            else:
                out.add(node.module)
                out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


# The layers, bottom first. A package imports its own modules and those of lower layers only:
# core imports nothing of ours; store imports core; the labeling app, the judge and training
# import store and core (not each other); the pipelines import those; the CLI sits on top.
LAYERS = {"core": 0, "store": 1, "annotate_app": 2, "judge": 2, "training": 2, "pipelines": 3, "cli": 4}
THIRD_PARTY = {"core": ("gradio", "openai", "duckdb"),
               "store": ("torch", "transformers", "trl", "gradio", "openai"),
               "annotate_app": ("torch", "transformers", "trl"),
               "judge": ("gradio",), "training": ("gradio",)}


def _package_of_file(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    if rel[0] != "prefloop":
        return rel[0]
    return rel[1] if rel[1] in ("pipelines", "cli") else "cli"   # __init__, __main__: the top


def _package_of_module(name: str) -> str | None:
    """Our package a module name belongs to (``None``: not ours, or the bare namespace root)."""
    parts = name.split(".")
    if parts[0] != "prefloop" or len(parts) == 1:
        return None
    return parts[1] if parts[1] in LAYERS else None


def _layer_files() -> list[Path]:
    return [f for folder in FOLDERS for f in _files(folder)]


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_point_one_way(package):
    bad = []
    for f in _layer_files():
        if _package_of_file(f) != package:
            continue
        for m in _imports(f):
            other = _package_of_module(m or "")
            if other is not None and other != package and LAYERS[other] >= LAYERS[package]:
                bad.append((f.relative_to(ROOT).as_posix(), m))
            if any(m == x or (m or "").startswith(x + ".") for x in THIRD_PARTY.get(package, ())):
                bad.append((f.relative_to(ROOT).as_posix(), m))
    assert bad == []


def test_the_layer_map_covers_every_file():
    assert {_package_of_file(f) for f in _layer_files()} == set(LAYERS)
    assert _package_of_module("prefloop.judge.batch") == "judge"
    assert _package_of_module("prefloop") is None and _package_of_module("numpy") is None


def test_the_namespace_root_imports_nothing_of_ours():
    assert not {m for m in _imports(ROOT / "prefloop" / "__init__.py") if m.startswith("prefloop")}


def test_only_the_store_runs_sql():
    bad = [f.relative_to(ROOT).as_posix() for folder in ("core", "judge", "training", "annotate_app", "prefloop")
           for f in _files(folder) if ".execute(" in f.read_text() or "con.sql(" in f.read_text()]
    assert bad == []


def test_every_user_error_has_one_root():
    from prefloop import store
    from prefloop.annotate_app import errors as app_errors
    from prefloop.core import models
    from prefloop.judge import errors as judge_errors
    from prefloop.training import errors as training_errors

    classes = [getattr(m, n) for m in (store, app_errors, judge_errors, training_errors)
               for n in m.__all__ if isinstance(getattr(m, n), type) and issubclass(getattr(m, n), Exception)]
    classes.append(models.ModelNotFoundError)
    assert len(classes) >= 14 and all(issubclass(c, PrefloopError) for c in classes)


def _doctest_params():
    """Every module; those of the training stack (they import torch, transformers and TRL)
    carry the ``model`` marker, so the fast tier leaves them out."""
    heavy = ("prefloop.training",)
    return [pytest.param(m, marks=pytest.mark.model) if m.startswith(heavy) else m for m in _modules()]


@pytest.mark.parametrize("module", _doctest_params())
def test_doctests(module):
    if module in ("prefloop.__main__",):
        pytest.skip("the entry point runs the CLI when imported")
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_the_namespace_holds_every_folder():
    assert prefloop.__path__ and sorted(FOLDERS) == sorted({"core", "store", "judge", "training",
                                                            "annotate_app", "prefloop"})
    assert len(_modules()) > 40


def test_the_error_tree_in_core_errors_names_every_error_class():
    """``core/errors.py`` documents the tree of PrefloopError; every class defined in the
    packages appears in it, and it names no class that no longer exists."""
    import importlib
    import re

    from prefloop.core import errors

    defined = set()
    for pkg in ("prefloop.store", "prefloop.core", "prefloop.judge", "prefloop.annotate_app",
                "prefloop.pipelines", "prefloop.cli", "prefloop.client"):
        root = importlib.import_module(pkg)
        names = [pkg] + [m.name for m in pkgutil.walk_packages(getattr(root, "__path__", []), pkg + ".")
                         if not m.name.endswith("__main__")]
        for name in names:
            mod = importlib.import_module(name)
            defined |= {c.__name__ for c in vars(mod).values() if isinstance(c, type)
                        and issubclass(c, errors.PrefloopError) and c.__module__ == mod.__name__}
    from prefloop.training import errors as training_errors

    defined |= {"TrainingError", "ConfigError"} & set(training_errors.__all__)
    tree = errors.__doc__.split("::", 1)[1].split("\n\n", 2)[1]
    documented = {w.rsplit(".", 1)[-1] for w in re.findall(r"[A-Za-z_.]*[A-Z][A-Za-z]*(?:Error|Match|Authorized|"
                                                          r"Submission|Items|Short|Unavailable)\b", tree)}
    assert documented == defined, (sorted(defined - documented), sorted(documented - defined))


def test_code_speaks_of_what_it_does_not_of_its_history():
    """No issue numbers, no "this round", no link to files a clone does not have."""
    import re

    bad = re.compile(r"\b[Ii]ssue:? ?#?\d+|\(issue[:)]|\b[Dd]efect \d+|since this round|\.\./shared/DESIGN")
    roots = ("core", "store", "judge", "training", "annotate_app", "prefloop", "bench", "tests")
    hits = [f"{p}:{n}" for r in roots for p in sorted(ROOT.joinpath(r).rglob("*.py"))
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if bad.search(line) and "re.compile" not in line]
    assert not hits, hits


def test_no_function_is_over_80_lines():
    """Functions read on one screen (the schema migrations, whole CREATE TABLE statements, aside)."""
    roots = ("core", "store", "judge", "training", "annotate_app", "prefloop", "bench", "tests")
    long = [f"{p}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for r in roots for p in sorted(ROOT.joinpath(r).rglob("*.py")) if p.name != "migrations.py"
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert not long, long


def test_other_packages_import_only_the_stores_public_modules():
    """``prefloop.store``'s surface is the facade and :data:`PUBLIC_MODULES`."""
    import re

    from prefloop.store import PUBLIC_MODULES

    pattern = re.compile(r"from prefloop\.store\.([a-z_]+)(?:\.[a-z_]+)* import|import prefloop\.store\.([a-z_]+)")
    found = {}
    for root in ("core", "judge", "training", "annotate_app", "prefloop", "bench"):
        for p in ROOT.joinpath(root).rglob("*.py"):
            for m in pattern.finditer(p.read_text(encoding="utf-8")):
                found.setdefault(m.group(1) or m.group(2), []).append(str(p.relative_to(ROOT)))
    inside = {k: v for k, v in found.items() if k not in PUBLIC_MODULES}
    assert not inside, inside
