"""Glacier surface facies from point labels.

Modules: :mod:`~glacierkit.facies.vocab` (classes and label tables), :mod:`~.points` (point-label
datasets, patches), :mod:`~.models` (spectral baseline, patch CNN), :mod:`~.cv` (grouped
cross-validation), :mod:`~.clean` (confident learning), :mod:`~.config` / :mod:`~.pipeline`
(``facies train``), :mod:`~.apply` (scene classification). Only ``models`` and the network
training need torch.
"""
