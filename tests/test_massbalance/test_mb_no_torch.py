"""glacierkit.massbalance (and its CLI) import and run with torch blocked."""

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
import glacierkit.massbalance
import glacierkit.massbalance.study
import glacierkit.cli.massbalance
from glacierkit.massbalance import Hypsometry, fit_linear
fit_linear([0, 1, 2, 3], [1, 0, -1, -2.5])
Hypsometry.uniform(2000, 3000, 1.0).aar_from_ela(2500)
assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)
print('ok')
"""


def test_massbalance_imports_without_torch():
    res = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
