"""Patch datasets and augmentations (torch)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from affine import Affine  # noqa: E402
from rasterio.windows import Window  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from glacierkit.dl.cond import CondSpec  # noqa: E402
from glacierkit.dl.data import Augment, PatchDataset, UnlabelledPatchDataset  # noqa: E402
from glacierkit.dl.labels import IGNORE  # noqa: E402
from glacierkit.dl.sources import NormStats, SourceLayout, open_scene, scene_from_arrays  # noqa: E402
from glacierkit.dl.split import block_split, half_split  # noqa: E402
from glacierkit.errors import InputError  # noqa: E402
from glacierkit.io import Grid  # noqa: E402

P = 16
NO_AUG = Augment(flips=False, rot90=False, noise_std=0.0, gamma=None, group_dropout=0.0)


@pytest.fixture
def stack_and_labels(dl_scene):
    stack = open_scene(dl_scene.layout, dl_scene.sources, name="s", region="himalaya")
    return stack, dl_scene.labels


@pytest.fixture
def norm(stack_and_labels):
    return NormStats.fit([stack_and_labels[0]])


def _red_relation(item, layout, norm):
    """Labels equal (red > 0.4) on the normalised red channel."""
    k = layout.index("red")
    thr = (0.4 - norm.mean[k]) / norm.std[k]
    return np.array_equal(item["x"][k].numpy() > thr, item["y"].numpy() == 1)


def test_item_shapes_dtypes_and_keys(stack_and_labels, norm):
    stack, lab = stack_and_labels
    ds = PatchDataset([stack], [lab], patch_size=P, norm=norm, augment=Augment(), seed=0)
    assert len(ds) == ds.n_windows == (64 // P) * (96 // P)
    it = ds[3]
    assert set(it) == {"x", "present", "cond", "y", "scene", "row", "col"}
    assert it["x"].shape == (9, P, P) and it["x"].dtype == torch.float32
    assert it["present"].shape == (4,) and it["present"].dtype == torch.float32
    assert it["cond"].shape == (0,) and it["cond"].dtype == torch.float32
    assert it["y"].shape == (P, P) and it["y"].dtype == torch.int64
    assert (it["scene"], it["row"], it["col"]) == (0, 0, 3 * P)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["x"].shape == (4, 9, P, P) and batch["cond"].shape == (4, 0)
    assert batch["row"].tolist() == [0, 0, 0, 0]
    reg = PatchDataset([stack], [lab], patch_size=P, norm=norm,
                       cond=CondSpec("region", ("alps", "himalaya")))
    np.testing.assert_array_equal(reg[0]["cond"].numpy(), [0, 1, 0])
    coords = PatchDataset([stack], [lab], patch_size=P, norm=norm, cond=CondSpec("coords"))
    c = coords[0]["cond"].numpy()
    assert c.shape == (4,) and np.allclose(c[0] ** 2 + c[1] ** 2, 1)
    unknown = PatchDataset([stack], [lab], patch_size=P, norm=norm, p_unknown=1.0,
                           cond=CondSpec("region", ("alps", "himalaya")))
    np.testing.assert_array_equal(unknown[0]["cond"].numpy(), [0, 0, 1])


def test_unaugmented_patch_equals_normalised_window(stack_and_labels, norm):
    stack, lab = stack_and_labels
    ds = PatchDataset([stack], [lab], patch_size=P, norm=norm, augment=None)
    it = ds[5]
    r, c = it["row"], it["col"]
    np.testing.assert_array_equal(it["x"].numpy(),
                                  norm.apply(stack.data[:, r:r + P, c:c + P]))
    np.testing.assert_array_equal(it["y"].numpy(), lab[r:r + P, c:c + P])


def test_flips_rot90_keep_x_and_y_aligned(stack_and_labels, norm):
    stack, lab = stack_and_labels
    aug = Augment(flips=True, rot90=True, noise_std=0.0, gamma=None, group_dropout=0.0)
    ds = PatchDataset([stack], [lab], patch_size=P, norm=norm, augment=aug,
                      samples_per_epoch=40, seed=1)
    changed = 0
    for i in range(len(ds)):
        it = ds[i]
        assert _red_relation(it, stack.layout, norm)
        r, c = it["row"], it["col"]
        changed += not np.array_equal(it["y"].numpy(), lab[r:r + P, c:c + P])
    assert changed >= 10            # the augmentation really moved pixels
    # With noise and gamma as well the relation survives (classes are far apart).
    full = PatchDataset([stack], [lab], patch_size=P, norm=norm,
                        augment=Augment(group_dropout=0.0), samples_per_epoch=20, seed=2)
    k = stack.layout.index("red")
    for i in range(len(full)):
        it = full[i]
        x, y = it["x"][k].numpy(), it["y"].numpy()
        if (y == 1).any() and (y == 0).any():
            assert x[y == 1].min() > x[y == 0].max()


def test_gamma_only_on_optical_channels(stack_and_labels, norm):
    stack, lab = stack_and_labels
    aug = Augment(flips=False, rot90=False, noise_std=0.0, gamma=(0.5, 0.5), group_dropout=0.0)
    ds = PatchDataset([stack], [lab], patch_size=P, norm=norm, augment=aug)
    it = ds[0]
    raw = stack.data[:, :P, :P].astype(np.float64)
    plain = norm.apply(stack.data[:, :P, :P])
    np.testing.assert_allclose(it["x"][4:].numpy(), plain[4:], atol=1e-6)   # dem, sar, coh
    ref = (norm.mean + 3 * norm.std)[:4, None, None]
    expect = ((ref * (raw[:4] / ref) ** 0.5) - norm.mean[:4, None, None]) / \
        norm.std[:4, None, None]
    np.testing.assert_allclose(it["x"][:4].numpy(), expect, rtol=1e-4, atol=1e-4)


def test_group_dropout_zeroes_and_never_drops_all(stack_and_labels, norm):
    stack, lab = stack_and_labels
    drop_all = Augment(flips=False, rot90=False, noise_std=0.0, gamma=None, group_dropout=1.0)
    ds = PatchDataset([stack], [lab], patch_size=P, norm=norm, augment=drop_all)
    it = ds[0]
    np.testing.assert_array_equal(it["present"].numpy(), [1, 0, 0, 0])
    assert torch.all(it["x"][4:] == 0) and torch.any(it["x"][:4] != 0)
    keep = PatchDataset([stack], [lab], patch_size=P, norm=norm,
                        augment=Augment(group_dropout=1.0, keep_groups=("sar",)))
    np.testing.assert_array_equal(keep[0]["present"].numpy(), [1, 0, 1, 0])
    # Primary (optical) missing from the scene: one group always survives.
    no_opt = scene_from_arrays(stack.layout, stack.grid,
                               {"dem": stack.data[4:5], "sar": 10 ** (stack.data[6:8] / 10),
                                "coherence": stack.data[8:9]})
    assert no_opt.present == (False, True, True, True)
    ds2 = PatchDataset([no_opt], [lab], patch_size=P, norm=norm, augment=drop_all,
                       samples_per_epoch=30, seed=3)
    survivors = set()
    for i in range(len(ds2)):
        it = ds2[i]
        pres = it["present"].numpy()
        assert pres.sum() == 1 and pres[0] == 0
        g = int(np.flatnonzero(pres)[0])
        survivors.add(g)
        sl = stack.layout.slices[stack.layout.group_names[g]]
        mask = np.ones(9, bool)
        mask[sl] = False
        assert torch.all(it["x"][mask] == 0)
    assert len(survivors) > 1                # the survivor is chosen at random
    # Partial dropout: about 20 % of the non-primary groups.
    part = PatchDataset([stack], [lab], patch_size=P, norm=norm, samples_per_epoch=200,
                        augment=Augment(group_dropout=0.2), seed=4)
    pres = np.stack([part[i]["present"].numpy() for i in range(len(part))])
    assert np.all(pres[:, 0] == 1)
    assert 0.1 < 1 - pres[:, 1:].mean() < 0.3


def test_same_seed_same_samples_and_epochs(stack_and_labels, norm):
    stack, lab = stack_and_labels
    kw = dict(patch_size=P, norm=norm, augment=Augment(), samples_per_epoch=12)
    a = PatchDataset([stack], [lab], seed=5, **kw)
    b = PatchDataset([stack], [lab], seed=5, **kw)
    c = PatchDataset([stack], [lab], seed=6, **kw)
    for i in (0, 7, 11):
        ia, ib = a[i], b[i]
        assert torch.equal(ia["x"], ib["x"]) and torch.equal(ia["y"], ib["y"])
        assert (ia["row"], ia["col"]) == (ib["row"], ib["col"])
    assert any(not torch.equal(a[i]["x"], c[i]["x"]) for i in range(12))
    first = [a[i]["x"] for i in range(12)]
    a.set_epoch(1)
    assert a.epoch == 1
    assert any(not torch.equal(first[i], a[i]["x"]) for i in range(12))
    # Order-independent: item 7 is the same whether drawn first or last.
    b.set_epoch(1)
    assert torch.equal(b[7]["x"], a[7]["x"])
    with pytest.raises(IndexError):
        a[12]


def test_epoch_reaches_persistent_workers(stack_and_labels, norm):
    stack, lab = stack_and_labels
    ds = PatchDataset([stack], [lab], patch_size=P, norm=norm, augment=Augment(),
                      samples_per_epoch=4, seed=9)
    loader = DataLoader(ds, batch_size=4, num_workers=1, persistent_workers=True)
    got = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        got.append(next(iter(loader))["x"])
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        np.testing.assert_array_equal(got[epoch].numpy(),
                                      torch.stack([ds[i]["x"] for i in range(4)]).numpy())
    assert not torch.equal(got[0], got[1])


def test_windows_respect_the_split(stack_and_labels, norm):
    stack, lab = stack_and_labels
    sm = half_split(stack.shape, axis="cols", test_fraction=0.4, patch_size=P)
    rnd = PatchDataset([stack], [lab], sm, split="test", patch_size=P, norm=norm,
                       augment=Augment(), samples_per_epoch=60, seed=0)
    for i in range(len(rnd)):
        it = rnd[i]
        r, c = it["row"], it["col"]
        assert np.all(sm.map[r:r + P, c:c + P] == 2)
    fixed = PatchDataset([stack], [lab], sm, split="train", patch_size=P, norm=norm)
    assert len(fixed) == len(sm.windows("train", P))
    for i in range(len(fixed)):
        r, c = fixed[i]["row"], fixed[i]["col"]
        assert np.all(sm.map[r:r + P, c:c + P] == 0)
    blocks = block_split(stack.shape, block_size=32, patch_size=P, buffer_px=0, seed=1)
    two = PatchDataset([stack, stack], [lab, lab], [blocks, blocks], split="train",
                       patch_size=P, norm=norm, samples_per_epoch=40, seed=2)
    scenes = {two[i]["scene"] for i in range(len(two))}
    assert scenes == {0, 1}
    with pytest.raises(InputError, match="split"):
        PatchDataset([stack], [lab], sm, patch_size=P, norm=norm)


def test_explicit_windows_and_min_labelled(stack_and_labels, norm):
    stack, lab = stack_and_labels
    lab = lab.copy()
    lab[:, :48] = IGNORE                          # left half unlabelled
    wins = [Window(0, 0, P, P), Window(40, 0, P, P), Window(60, 16, P, P)]
    ds = PatchDataset([stack], [lab], [wins], patch_size=P, norm=norm, min_labelled=0.5)
    assert [(ds[i]["row"], ds[i]["col"]) for i in range(len(ds))] == [(0, 40), (16, 60)]
    rnd = PatchDataset([stack], [lab], patch_size=P, norm=norm, min_labelled=1.0,
                       samples_per_epoch=30)
    assert all(rnd[i]["col"] >= 48 for i in range(30))
    with pytest.raises(InputError, match="outside"):
        PatchDataset([stack], [lab], [[Window(90, 0, P, P)]], patch_size=P, norm=norm)
    with pytest.raises(InputError, match="no 16×16 window"):
        PatchDataset([stack], [np.full_like(lab, IGNORE)], patch_size=P, norm=norm,
                     min_labelled=0.1)


def test_nodata_becomes_ignore_and_unlabelled_dataset(make_dl_scene):
    s = make_dl_scene("holes", nodata_corner=True)
    stack = open_scene(s.layout, s.sources)
    norm = NormStats.fit([stack])
    ds = PatchDataset([stack], [s.labels], patch_size=P, norm=norm)
    it = ds[0]
    assert torch.all(it["y"][:8, :8] == IGNORE) and torch.all(it["x"][:4, :8, :8] == 0)
    un = UnlabelledPatchDataset([stack], patch_size=P, norm=norm, augment=Augment(),
                                samples_per_epoch=8, min_valid=0.9)
    item = un[0]
    assert "y" not in item and item["valid"].dtype == torch.bool
    assert item["x"].shape == (9, P, P)
    corner = UnlabelledPatchDataset([stack], [[Window(0, 0, P, P)]], patch_size=P, norm=norm,
                                    min_valid=0.5)
    assert int(corner[0]["valid"].sum()) == P * P - 64


def test_validation_errors(stack_and_labels, norm):
    stack, lab = stack_and_labels
    other = SourceLayout.standard(("red",))
    odd = scene_from_arrays(other, Grid("EPSG:32645", Affine(30, 0, 0, 0, -30, 0), (32, 32)),
                            {"optical": np.ones((1, 32, 32))})
    with pytest.raises(InputError, match="share one layout"):
        PatchDataset([stack, odd], [lab, lab[:32, :32]], patch_size=P, norm=norm)
    with pytest.raises(InputError, match="norm has"):
        PatchDataset([odd], [lab[:32, :32]], patch_size=P, norm=norm)
    with pytest.raises(InputError, match="not in the layout"):
        PatchDataset([stack], [lab], patch_size=P, norm=norm,
                     augment=Augment(keep_groups=("lidar",)))
    with pytest.raises(InputError, match="gamma"):
        Augment(gamma=(1.2, 0.8))
    assert Augment.from_dict(Augment().to_dict()) == Augment()
