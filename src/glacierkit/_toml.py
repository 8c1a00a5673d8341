"""Reading the TOML config files of the training commands (``map train``, ``facies train``)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from glacierkit.errors import InputError


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
