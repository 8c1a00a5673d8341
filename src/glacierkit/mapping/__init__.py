"""Glacier outline mapping; for now the classic threshold baseline (no torch at import).

The deep-learning pipeline glue (config, train, predict, evaluate) is added here later.
"""

from glacierkit.mapping.baseline import baseline_classes

__all__ = ["baseline_classes"]
