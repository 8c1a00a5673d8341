"""Confusion matrix and scores against hand-counted answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from glacierkit.errors import InputError
from glacierkit.metrics import ConfusionMatrix, segmentation_scores


def test_binary_scores_hand_counted():
    ref = np.array([[1, 1, 1, 0], [0, 0, 1, 255]])
    pred = np.array([[1, 1, 0, 1], [0, 255, 1, 1]])
    # Counted pixels exclude ref==255 (last) and pred==255 (row 1, col 1): 6 pixels.
    # ref/pred pairs: (1,1) (1,1) (1,0) (0,1) (0,0) (1,1) → TP=3, FN=1, FP=1, TN=1.
    cm = ConfusionMatrix(2).update(pred, ref)
    assert cm.matrix.tolist() == [[1, 1], [1, 3]]
    b = cm.binary()
    assert (b["tp"], b["fp"], b["fn"], b["tn"], b["n"]) == (3, 1, 1, 1, 6)
    assert b["iou"] == pytest.approx(3 / 5)
    assert b["precision"] == pytest.approx(3 / 4)
    assert b["recall"] == pytest.approx(3 / 4)
    assert b["f1"] == pytest.approx(6 / 8)
    assert b["accuracy"] == pytest.approx(4 / 6)
    # Background class: TP=1, FP=1 (pred 0, ref 1), FN=1 → IoU 1/3, F1 2/4.
    pc = cm.per_class()
    assert pc["iou"][0] == pytest.approx(1 / 3) and pc["f1"][0] == pytest.approx(0.5)
    assert cm.macro_f1() == pytest.approx((0.5 + 0.75) / 2)
    assert pc["support"].tolist() == [2.0, 4.0]


def test_valid_mask_and_accumulation_over_tiles_equals_one_pass():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 3, (40, 50))
    pred = np.where(rng.random((40, 50)) < 0.8, ref, rng.integers(0, 3, (40, 50)))
    valid = rng.random((40, 50)) < 0.9
    whole = ConfusionMatrix(3).update(pred, ref, valid)
    tiles = ConfusionMatrix(3)
    for r0 in (0, 20):
        for c0 in (0, 25):
            sl = np.s_[r0:r0 + 20, c0:c0 + 25]
            tiles.update(pred[sl], ref[sl], valid[sl])
    np.testing.assert_array_equal(whole.matrix, tiles.matrix)
    assert whole.total == int(valid.sum())
    # Merge of two halves equals the whole as well.
    a = ConfusionMatrix(3).update(pred[:20], ref[:20], valid[:20])
    b = ConfusionMatrix(3).update(pred[20:], ref[20:], valid[20:])
    np.testing.assert_array_equal(a.merge(b).matrix, whole.matrix)
    # Overall accuracy = share of equal labels among valid pixels.
    assert whole.overall_accuracy() == pytest.approx(float((pred == ref)[valid].mean()))


def test_zero_division_gives_nan_not_crash():
    # Class 1 absent from ref and pred: precision, recall, IoU, F1 all undefined.
    cm = ConfusionMatrix(2).update(np.zeros(5, int), np.zeros(5, int))
    b = cm.binary()
    assert all(math.isnan(b[k]) for k in ("iou", "precision", "recall", "f1"))
    assert b["accuracy"] == 1.0
    assert cm.macro_f1() == 1.0  # mean over defined classes only (class 0: F1 = 1)
    # Never predicted but present: precision NaN, recall 0, IoU 0, F1 0.
    b = ConfusionMatrix(2).update(np.zeros(4, int), np.array([1, 1, 0, 0])).binary()
    assert math.isnan(b["precision"]) and b["recall"] == 0 and b["iou"] == 0 and b["f1"] == 0
    empty = ConfusionMatrix(2)
    assert math.isnan(empty.overall_accuracy()) and math.isnan(empty.macro_f1())
    json.dumps(empty.scores())  # JSON-serialisable even when undefined


def test_bad_inputs_raise():
    with pytest.raises(InputError, match="outside the classes"):
        ConfusionMatrix(2).update(np.array([2]), np.array([1]))
    with pytest.raises(InputError, match="shape"):
        ConfusionMatrix(2).update(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(InputError, match="integer"):
        ConfusionMatrix(2).update(np.array([0.5]), np.array([1]))
    with pytest.raises(InputError, match="ignore_index"):
        ConfusionMatrix(2, ignore_index=1)
    with pytest.raises(InputError):
        ConfusionMatrix(1)


def test_segmentation_scores_dict():
    s = segmentation_scores(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    assert s["binary"]["iou"] == pytest.approx(0.5)
    assert s["matrix"] == [[2, 1], [0, 1]]
    assert s["overall_accuracy"] == pytest.approx(0.75)
    # bool arrays are accepted as 0/1 classes
    s2 = segmentation_scores(np.array([True, True, False, False]),
                             np.array([True, False, False, False]))
    assert s2["matrix"] == s["matrix"]
