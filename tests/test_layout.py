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
from prefloop.errors import PrefloopError

from .conftest import ROOT

PACKAGES = ("prefloop.store", "prefloop.judge", "prefloop.training", "prefloop.annotate_app", "prefloop")
FOLDERS = {"store": "prefloop.store", "judge": "prefloop.judge", "training": "prefloop.training",
           "annotate_app": "prefloop.annotate_app", "prefloop": "prefloop"}


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
                                    "prefloop.store.stats", "prefloop.models", "prefloop.runs"])
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


# who may not import whom (arrows point down: CLI -> pipelines -> app/judge/training -> store)
FORBIDDEN = {
    "store": ("prefloop.judge", "prefloop.training", "prefloop.annotate_app", "prefloop.cli",
              "prefloop.demo", "prefloop.loop", "prefloop.evaluation", "prefloop.models",
              "prefloop.runs", "torch", "transformers", "gradio", "openai"),
    "judge": ("prefloop.training", "prefloop.annotate_app", "prefloop.cli", "prefloop.demo",
              "prefloop.loop", "prefloop.evaluation", "gradio"),
    "training": ("prefloop.judge", "prefloop.annotate_app", "prefloop.cli", "prefloop.demo",
                 "prefloop.loop", "prefloop.evaluation", "gradio"),
    "annotate_app": ("prefloop.training", "prefloop.cli", "prefloop.demo", "prefloop.loop",
                     "torch", "transformers", "trl"),
}
PLUMBING = ("errors.py", "runs.py", "models.py", "testing.py", "stats.py")


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layers_point_one_way(folder):
    bad = [(f.relative_to(ROOT).as_posix(), m) for f in _files(folder) for m in _imports(f)
           if m and any(m == x or m.startswith(x + ".") for x in FORBIDDEN[folder])]
    assert bad == []


def test_shared_plumbing_imports_only_the_store():
    up = ("prefloop.judge", "prefloop.training", "prefloop.annotate_app", "prefloop.cli",
          "prefloop.demo", "prefloop.loop", "prefloop.evaluation")
    bad = [(name, m) for name in PLUMBING if (ROOT / "prefloop" / name).exists()
           for m in _imports(ROOT / "prefloop" / name) if m and m.startswith(up)]
    assert bad == []


def test_only_the_store_runs_sql():
    bad = [f.relative_to(ROOT).as_posix() for folder in ("judge", "training", "annotate_app", "prefloop")
           for f in _files(folder) if ".execute(" in f.read_text() or "con.sql(" in f.read_text()]
    assert bad == []


def test_every_user_error_has_one_root():
    from prefloop import models, store
    from prefloop.annotate_app import errors as app_errors
    from prefloop.judge import errors as judge_errors
    from prefloop.training import errors as training_errors

    classes = [getattr(m, n) for m in (store, app_errors, judge_errors, training_errors)
               for n in m.__all__ if isinstance(getattr(m, n), type) and issubclass(getattr(m, n), Exception)]
    classes.append(models.ModelNotFoundError)
    assert len(classes) >= 14 and all(issubclass(c, PrefloopError) for c in classes)


@pytest.mark.parametrize("module", _modules())
def test_doctests(module):
    if module in ("prefloop.__main__",):
        pytest.skip("the entry point runs the CLI when imported")
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_the_namespace_holds_every_folder():
    assert prefloop.__path__ and sorted(FOLDERS) == sorted({"store", "judge", "training",
                                                            "annotate_app", "prefloop"})
    assert len(_modules()) > 40
