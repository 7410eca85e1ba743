"""Reading the files users hand to prefloop (configs, constitutions): one place that turns
every expected failure into one line naming the file, and for a parse error its line and
column, raised as the caller's own error class.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "bad.yaml"
>>> _ = p.write_text("a: [1,\\n")
>>> try:
...     read_config_file(p)
... except ValueError as e:
...     print(str(e).removeprefix(str(p)))
:2:1: not valid YAML: expected the node content, but found '<stream end>'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_config_file"]


def _yaml_error(path: Path, exc) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    return f"{where}: not valid YAML: {getattr(exc, 'problem', None) or str(exc).splitlines()[0]}"


def read_config_file(path: str | Path, error: type[Exception] = ValueError, *,
                     what: str = "file") -> Any:
    """The parsed content of a YAML (``.yaml``/``.yml``, and any other suffix), TOML
    (``.toml``) or JSON (``.json``) file; an empty file is ``None``.

    Raises:
        error: one line: ``<path>: cannot read the <what>: <reason>`` (missing, a directory,
            unreadable, not UTF-8) or ``<path>:<line>:<column>: not valid YAML: <reason>``
            (TOML and JSON alike).
    """
    import yaml

    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory, not a file")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: cannot read the {what}: not UTF-8 text") from None
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise error(f"{path}: not valid TOML: {exc}") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise error(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(_yaml_error(path, exc)) from None
