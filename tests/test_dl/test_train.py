"""Training: config round trip, learning, checkpoints, exact resume, interrupts, logits."""

from __future__ import annotations

import json
import signal

import lightning as L
import numpy as np
import pytest
import torch

from glacierkit.dl.models import build_model
from glacierkit.dl.train import (
    EpochSampler,
    FitResult,
    TrainConfig,
    _replace_with_unknown,
    estimate_class_weights,
    evaluate,
    fit,
    predict_logits,
    scores_from_matrix,
)
from glacierkit.errors import DatasetNotFoundError, InputError, OutputExistsError

P = 32

pytestmark = pytest.mark.usefixtures("one_thread")


class ToyPatches(torch.utils.data.Dataset):
    """Contract-shaped items: 2 groups (2 + 1 channels); glacier where channel 0 > 0.3.

    Every item is a function of ``(seed, epoch, index)`` only (as PatchDataset's). The top
    rows are ignore (255) so that the loss and scores must skip them.
    """

    def __init__(self, n: int, seed: int, *, cond_dim: int = 0, glacier_share: float | None = None):
        self.n, self.seed, self.epoch, self.cond_dim = n, seed, 0, cond_dim
        self.glacier_share = glacier_share

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        base = rng.normal(size=(1, P // 8, P // 8))
        smooth = np.kron(base, np.ones((8, 8)))  # blocky, learnable from context too
        x = np.concatenate([smooth + 0.3 * rng.normal(size=(1, P, P)),
                            rng.normal(size=(2, P, P))]).astype(np.float32)
        thr = 0.3 if self.glacier_share is None else np.quantile(smooth, 1 - self.glacier_share)
        y = (smooth[0] > thr).astype(np.int64)
        y[:2] = 255
        cond = np.zeros(self.cond_dim, np.float32)
        if self.cond_dim:
            cond[i % self.cond_dim] = 1.0
        return {"x": torch.from_numpy(x), "present": torch.ones(2), "cond": torch.from_numpy(cond),
                "y": torch.from_numpy(y), "scene": 0, "row": 0, "col": 0}


def tiny_model(cond_dim: int = 0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("resunet", group_channels=(2, 1), n_classes=2, cond_dim=cond_dim,
                       widths=(8, 8, 16), bottleneck=16)


def cfg_(**kw) -> TrainConfig:
    base = dict(arch="resunet", epochs=3, batch_size=4, lr=3e-3, restart_epochs=8,
                progress=False, deterministic=True, accelerator="cpu")
    base.update(kw)
    return TrainConfig(**base)


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


# ---------------------------------------------------------------------------------- config
def test_config_round_trip_and_validation():
    cfg = TrainConfig(epochs=3, class_weights=[1.0, 2.0], aux_weights=[0.5, 0.25],
                      overrides={"widths": [8, 8, 16]}, max_steps=7)
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    back = TrainConfig.from_dict(d)
    assert back == cfg and back.aux_weights == (0.5, 0.25)
    auto = TrainConfig(class_weights="auto")
    assert TrainConfig.from_dict(auto.to_dict()).class_weights == "auto"
    with pytest.raises(InputError, match="unknown TrainConfig key"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(InputError, match="class_weights"):
        TrainConfig(class_weights=[1.0])
    with pytest.raises(InputError, match="accelerator"):
        TrainConfig(accelerator="tpu")
    with pytest.raises(InputError, match="p_unknown"):
        TrainConfig(p_unknown=1.0)


def test_scores_and_helpers():
    s = scores_from_matrix(np.array([[6, 2], [1, 3]]))
    assert s["iou"] == pytest.approx(3 / 6) and s["f1"] == pytest.approx(6 / 9)
    assert s["accuracy"] == pytest.approx(9 / 12) and s["n"] == 12
    # EpochSampler: a permutation that depends on (seed, epoch) only, with a one-off skip
    a = EpochSampler(10, seed=1)
    a.set_epoch(3)
    order = list(a)
    assert sorted(order) == list(range(10)) and order == list(a)
    a.set_epoch(4)
    assert list(a) != order
    a.set_epoch(3)
    a.skip_once(3, 4)
    assert list(a) == order[4:] and list(a) == order
    # unknown-slot replacement keeps one-hots
    torch.manual_seed(0)
    cond = torch.nn.functional.one_hot(torch.arange(400) % 2, 3).float()
    out = _replace_with_unknown(cond, 0.25)
    assert torch.all(out.sum(1) == 1)
    assert 0.15 < float(out[:, -1].mean()) < 0.35


def test_auto_class_weights_favour_the_rare_class():
    ds = ToyPatches(16, 0, glacier_share=0.2)
    w = estimate_class_weights(ds, 2)
    assert w[1] > 2 * w[0] and np.mean(w) == pytest.approx(1.0, rel=0.2)


# ---------------------------------------------------------------------------------- fit
def test_fit_learns_checkpoints_and_logs(tmp_path):
    cfg = cfg_(epochs=4, class_weights="auto")
    res = fit(tiny_model(), ToyPatches(16, 0), ToyPatches(8, 99), cfg, out_dir=tmp_path / "run")
    assert isinstance(res, FitResult)
    assert res.steps == 16 and res.epochs == 4 and res.resumed_from is None
    assert not torch.are_deterministic_algorithms_enabled()  # process flags restored
    h = res.history
    assert [e["epoch"] for e in h] == [0, 1, 2, 3]
    assert h[-1]["train_loss"] < h[0]["train_loss"]           # it learns
    assert h[-1]["val_loss"] < h[0]["val_loss"]
    for e in h:
        for k in ("val_iou", "val_f1", "val_miou", "val_accuracy"):
            assert 0.0 <= e[k] <= 1.0
    assert res.best_val_iou == pytest.approx(max(e["val_iou"] for e in h), abs=1e-6)
    assert res.best_val_iou > 0.5
    assert res.last_checkpoint.name == "last.ckpt" and res.last_checkpoint.is_file()
    assert res.best_checkpoint.is_file() and res.best_checkpoint.name.startswith("best-")
    assert res.class_weights is not None and len(res.class_weights) == 2
    assert json.loads((tmp_path / "run" / "history.json").read_text()) == h
    # the returned model: CPU, eval mode, best weights
    assert not res.model.training
    best = {k[6:]: v for k, v in weights(res.best_checkpoint).items() if k.startswith("model.")}
    assert max_abs_diff(best, res.model.state_dict()) == 0.0
    scores = evaluate(res.model, ToyPatches(8, 99), batch_size=4, device="cpu")
    assert scores["iou"] == pytest.approx(res.best_val_iou, abs=1e-6)
    # a second fresh run into the same folder must be explicit
    with pytest.raises(OutputExistsError, match="resume='auto'"):
        fit(tiny_model(), ToyPatches(16, 0), None, cfg, out_dir=tmp_path / "run")


def test_fit_without_validation(tmp_path):
    res = fit(tiny_model(), ToyPatches(8, 0), None, cfg_(epochs=2), out_dir=tmp_path)
    assert res.best_checkpoint == res.last_checkpoint and res.best_val_iou is None
    assert len(res.history) == 2 and "val_iou" not in res.history[0]
    with pytest.raises(InputError, match="patience"):
        fit(tiny_model(), ToyPatches(8, 0), None, cfg_(patience=2), out_dir=tmp_path / "b")
    with pytest.raises(DatasetNotFoundError, match="resume='auto'"):
        fit(tiny_model(), ToyPatches(8, 0), None, cfg_(), out_dir=tmp_path / "c", resume=True)


def test_resume_after_epoch_boundary_matches_uninterrupted_run(tmp_path):
    """Interrupted at the end of epoch 2 (max_steps), resumed with resume="auto".

    Asserted: the resumed run starts at the saved global step (8), ends at the same step as
    the uninterrupted run, and its final weights equal the uninterrupted run's (CPU,
    deterministic=True, data a function of (seed, epoch, index), dropout re-seeded per step:
    the continuation is exactly the same computation, so the tolerance is tiny).
    """
    train, val = ToyPatches(16, 0), ToyPatches(8, 99)
    full = fit(tiny_model(), train, val, cfg_(), out_dir=tmp_path / "full")
    part = fit(tiny_model(), ToyPatches(16, 0), val, cfg_(max_steps=8), out_dir=tmp_path / "int")
    assert part.steps == 8 and part.epochs == 2

    seen: list[int] = []

    class FirstStep(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            seen.append(trainer.global_step)

    res = fit(tiny_model(seed=5), ToyPatches(16, 0), val, cfg_(), out_dir=tmp_path / "int",
              resume="auto", callbacks=[FirstStep()])
    assert res.resumed_from is not None and res.resumed_from.name == "last.ckpt"
    assert seen[0] == 8 and res.steps == full.steps == 12
    assert [e["epoch"] for e in res.history] == [0, 1, 2]
    assert max_abs_diff(weights(full.last_checkpoint), weights(res.last_checkpoint)) < 1e-6
    assert res.history[-1]["val_iou"] == pytest.approx(full.history[-1]["val_iou"], abs=1e-6)


def test_keyboard_interrupt_mid_epoch_then_resume(tmp_path):
    """Ctrl+C mid-epoch: a KeyboardInterrupt with a resume hint, SIGINT handler restored, and
    ``resume="auto"`` continues from the ``checkpoint_every`` checkpoint (step 6, mid-epoch),
    skipping the batches of that epoch already trained on, to the uninterrupted result."""
    cfg = cfg_(checkpoint_every=3)
    val = ToyPatches(8, 99)
    full = fit(tiny_model(), ToyPatches(16, 0), val, cfg, out_dir=tmp_path / "full")

    class CtrlC(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 7:
                raise KeyboardInterrupt

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="resume='auto'"):
        fit(tiny_model(), ToyPatches(16, 0), val, cfg, out_dir=tmp_path / "int",
            callbacks=[CtrlC()])
    assert signal.getsignal(signal.SIGINT) is handler
    assert weights(tmp_path / "int" / "checkpoints" / "last.ckpt")  # saved at step 6
    assert torch.load(tmp_path / "int" / "checkpoints" / "last.ckpt",
                      weights_only=True)["global_step"] == 6

    res = fit(tiny_model(), ToyPatches(16, 0), val, cfg, out_dir=tmp_path / "int",
              resume="auto")
    assert res.steps == 12
    assert max_abs_diff(weights(full.last_checkpoint), weights(res.last_checkpoint)) < 1e-6
    # resuming a finished run trains nothing more and returns the same model
    again = fit(tiny_model(), ToyPatches(16, 0), val, cfg, out_dir=tmp_path / "int",
                resume="auto")
    assert again.steps == 12 and len(again.history) == 3


def test_resume_rejects_another_model(tmp_path):
    fit(tiny_model(), ToyPatches(8, 0), None, cfg_(epochs=1), out_dir=tmp_path)
    with pytest.raises(InputError, match="does not match this model"):
        fit(tiny_model(cond_dim=3), ToyPatches(8, 0, cond_dim=3), None, cfg_(epochs=2),
            out_dir=tmp_path, resume="auto")


def test_region_unknown_slot_training_runs(tmp_path):
    res = fit(tiny_model(cond_dim=3), ToyPatches(8, 0, cond_dim=3), ToyPatches(4, 9, cond_dim=3),
              cfg_(epochs=1, p_unknown=0.5), out_dir=tmp_path)
    assert np.isfinite(res.history[0]["train_loss"])


# ---------------------------------------------------------------------------------- logits
def test_predict_logits_for_calibration():
    model = tiny_model()
    ds = ToyPatches(6, 3)
    logits, labels = predict_logits(model, ds, batch_size=4, device="cpu", max_pixels=2_000)
    n_labelled = 6 * (P - 2) * P
    assert logits.dtype == np.float32 and logits.shape == (labels.size, 2)
    assert labels.dtype == np.int64 and set(np.unique(labels)) <= {0, 1}
    assert 0 < labels.size <= 2_000 < n_labelled
    again = predict_logits(model, ds, batch_size=2, device="cpu", max_pixels=2_000)
    np.testing.assert_array_equal(labels, again[1])
    np.testing.assert_allclose(logits, again[0], atol=1e-5)
    all_l, all_y = predict_logits(model, ds, batch_size=4, device="cpu", max_pixels=10**6)
    assert all_y.size == n_labelled and np.isfinite(all_l).all()
    assert model.training  # the model's mode is restored
