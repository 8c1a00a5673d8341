"""Log messages a user reads: no object reprs or staging paths, no Lightning chatter,
one line per training epoch and per demo step."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest


# --------------------------------------------------------------------------------- training
@pytest.fixture
def torch_one_thread():
    torch = pytest.importorskip("torch")
    pytest.importorskip("lightning")
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small CPU workloads stall with threads on a shared machine
    yield torch
    torch.set_num_threads(n)


def _toy_fit(torch, out: Path, **cfg_kw):
    """Two epochs of a tiny model on 8 contract-shaped 16×16 patches (+ 4 for validation)."""
    from glacierkit.dl.models import build_model
    from glacierkit.dl.train import TrainConfig, fit

    class Patches(torch.utils.data.Dataset):
        def __init__(self, n: int, seed: int) -> None:
            self.n, self.seed = n, seed

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> dict:
            rng = np.random.default_rng([self.seed, i])
            x = rng.normal(size=(3, 16, 16)).astype(np.float32)
            y = (x[0] > 0).astype(np.int64)
            return {"x": torch.from_numpy(x), "present": torch.ones(2),
                    "cond": torch.zeros(0), "y": torch.from_numpy(y), "scene": 0, "row": 0,
                    "col": 0}

    torch.manual_seed(0)
    model = build_model("resunet", group_channels=(2, 1), n_classes=2, cond_dim=0,
                        widths=(8, 8, 16), bottleneck=16)
    cfg = TrainConfig(**{"arch": "resunet", "epochs": 2, "batch_size": 4, "lr": 3e-3,
                         "accelerator": "cpu", "progress": True, **cfg_kw})
    return fit(model, Patches(8, 0), Patches(4, 1), cfg, out_dir=out)


class _Collect(logging.Handler):
    """Stands in for Lightning's own stderr handler on the ``lightning`` logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def lightning_handler():
    h = _Collect()
    logging.getLogger("lightning").addHandler(h)
    yield h
    logging.getLogger("lightning").removeHandler(h)


def test_training_logs_one_line_per_epoch_and_no_lightning_chatter(
        torch_one_thread, tmp_path, caplog, capfd, lightning_handler) -> None:
    caplog.set_level(logging.INFO)
    res = _toy_fit(torch_one_thread, tmp_path / "run")
    out, err = capfd.readouterr()
    text = "\n".join([caplog.text, out, err, *lightning_handler.messages])
    for chatter in ("💡", "Tip:", "litlogger", "litmodels", "`Trainer.fit` stopped",
                    "GPU available", "Trainable params"):
        assert chatter not in text
    assert lightning_handler.messages == []
    # stdout is for results: no progress bar there (stderr is not a terminal here either)
    assert out == ""
    ours = [r.getMessage() for r in caplog.records if r.name == "glacierkit.dl.train"]
    epochs = [m for m in ours if m.startswith("epoch ")]
    assert [m.split(":")[0] for m in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("train loss" in m and "val IoU" in m and m.endswith(" s)") for m in epochs)
    done = [m for m in ours if m.startswith("training done")]
    assert len(done) == 1 and "epochs = 2 reached" in done[0] and str(res.steps) in done[0]
    # Lightning's handler is back after training
    assert lightning_handler in logging.getLogger("lightning").handlers


def test_training_verbose_shows_lightning_messages_once(
        torch_one_thread, tmp_path, caplog, lightning_handler) -> None:
    caplog.set_level(logging.DEBUG)
    _toy_fit(torch_one_thread, tmp_path / "run")
    # through the application's handlers (here: caplog's on the root logger) only
    assert lightning_handler.messages == []
    stopped = [r for r in caplog.records if "`Trainer.fit` stopped" in r.getMessage()]
    assert len(stopped) == 1
    assert not any("💡" in r.getMessage() for r in caplog.records)
