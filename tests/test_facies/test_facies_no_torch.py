"""The torch-free facies modules import, and the spectral path runs, with torch blocked."""

from __future__ import annotations

CODE = """
import numpy as np
import pandas as pd
import glacierkit.facies.vocab, glacierkit.facies.points, glacierkit.facies.cv
import glacierkit.facies.clean, glacierkit.facies.models
from glacierkit.facies.vocab import Vocabulary
from glacierkit.facies.points import read_points
from glacierkit.facies.cv import grouped_cv
from glacierkit.facies.models import SpectralBaseline, sample_weights
from glacierkit.facies.clean import find_label_issues

rng = np.random.default_rng(0)
y = rng.integers(0, 3, 90)
names = ['ice', 'snow', 'debris']
df = pd.DataFrame({'class': [names[i] for i in y], 'glacier': np.repeat(['a', 'b', 'c'], 30),
                   'B1': np.eye(3)[y, 0] * 6 + rng.normal(0, 1, 90),
                   'B2': np.eye(3)[y, 1] * 6 + rng.normal(0, 1, 90)})
pts = read_points(df, vocabulary=Vocabulary(classes=names))
w = sample_weights(pts.targets, pts.frame['scene'].to_numpy())
cv = grouped_cv(pts.features, pts.targets, pts.groups,
                lambda i: SpectralBaseline(3, seed=i, params={'max_iter': 5}), n_classes=3,
                n_splits=3, weights=w, names=names)
res = find_label_issues(pts.targets, cv.probabilities, names=names)
assert res.pruned.shape == (90,)
"""


def test_facies_modules_work_without_torch(run_without_torch):
    run_without_torch(CODE)
