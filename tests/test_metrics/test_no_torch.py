"""The torch-free modules import with torch blocked."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys

class _BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == 'torch' or name.startswith('torch.'):
            raise ImportError(f'{name} is blocked in this test')
        return None

sys.meta_path.insert(0, _BlockTorch())
try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit('torch was not blocked')
import glacierkit.metrics, glacierkit.mapping.baseline, glacierkit.mapping
import glacierkit.io, glacierkit.tiling, glacierkit.velocity
import glacierkit.viz.reliability
import numpy as np
from glacierkit.metrics import TemperatureScaling, evaluate_outlines
TemperatureScaling(2.0).apply(np.zeros((1, 2)))
assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)
print('ok')
"""


def test_torch_free_modules_import_without_torch():
    res = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
