"""Reading the TOML config files of the training commands (``map train``, ``facies train``).

Paths in these files are resolved the same way by both commands
(:func:`resolve_config_path`): absolute, relative to the config file's folder, ``~/...``, or
``example:DATASET/FILE`` for a file of glacierkit's example data (``glacierkit data list``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from glacierkit.errors import DatasetNotFoundError, InputError

EXAMPLE_PREFIX = "example:"
"""Prefix of config paths that name a file of an example dataset: ``example:DATASET/FILE``."""


def read_config_toml(path: str | os.PathLike[str], *, command: str,
                     missing: type[Exception] = InputError) -> tuple[Path, dict[str, Any]]:
    """The path and parsed contents of a TOML config file.

    Args:
        path: The config file.
        command: The CLI command that prints a template (``"map train"``), named in the error
            for a missing file.
        missing: Exception raised when the file does not exist.

    Raises:
        missing: The file does not exist.
        InputError: The file is not valid TOML.
    """
    p = Path(path)
    if not p.is_file():
        raise missing(f"config file {p} does not exist; write one with "
                      f"`glacierkit {command} --template-config > {p.name}`.")
    try:
        return p, tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{p} is not valid TOML: {e}") from e


def resolve_config_path(value: Any, base: str | os.PathLike[str], *, what: str = "path",
                        must_exist: bool = False) -> Path:
    """Resolve a path given in a config file.

    Args:
        value: ``"example:DATASET/FILE"`` (a file of an example dataset, found with
            :func:`glacierkit.examples.path`; never downloaded), an absolute path, ``~/...``,
            or a path relative to ``base``.
        base: The folder relative paths are taken from (the config file's folder).
        what: What the path is, for error messages (``"label file"``, ``"[output] dir"``).
        must_exist: Raise unless the resolved path exists (example paths always must).

    Returns:
        The resolved path.

    Raises:
        InputError: ``value`` is not a string, or an example path is not
            ``example:DATASET/FILE``.
        DatasetNotFoundError: The example dataset or file is not found, or ``must_exist`` and
            the path does not exist.
    """
    if not isinstance(value, str | os.PathLike):
        raise InputError(f"{what} must be a path (a string); got {type(value).__name__} "
                         f"{value!r}.")
    s = os.fspath(value)
    if s.startswith(EXAMPLE_PREFIX):
        from glacierkit import examples

        rest = s[len(EXAMPLE_PREFIX):].strip("/")
        name, _, file = rest.partition("/")
        if not name or not file:
            raise InputError(f"{what}: example path {s!r} must look like "
                             f"'example:DATASET/FILE' (datasets: `glacierkit data list`).")
        return examples.path(name, file)
    p = Path(os.path.expanduser(s))
    p = p if p.is_absolute() else Path(base) / p
    if must_exist and not p.exists():
        raise DatasetNotFoundError(f"{what} {p} does not exist; give a path relative to the "
                                   f"config file's folder ({base}), an absolute path or "
                                   f"example:DATASET/FILE.")
    return p
