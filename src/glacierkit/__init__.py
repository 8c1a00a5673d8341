"""glacierkit: satellite imagery to glacier knowledge.

Subpackages (imports flow downward only): ``cli`` → pipelines → ``tiling`` → ``io`` → core.
``io`` and ``tiling`` never import torch.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glacierkit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
