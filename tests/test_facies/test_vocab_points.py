"""Facies vocabulary (presets, tables, unknown labels) and point-label reading / patch cutting.

Known answers: the Aberle et al. codes and names map onto the documented facies; a WKT
MULTIPOINT of 2 points gives 2 rows; a polygon sampled on the lattice of multiples of the
spacing (points strictly inside) gives a countable number of points; a patch cut at a point
equals the array window around that point's pixel.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from pyproj import Transformer

from glacierkit.errors import CRSError, InputError
from glacierkit.facies.points import cut_patches, read_points, sample_polygons
from glacierkit.facies.vocab import FACIES, PRESETS, Vocabulary, colour_table, normalise_label

UTM = "EPSG:32607"


# ------------------------------------------------------------------------------ vocabulary
def test_normalise_label_spellings():
    assert normalise_label("Shadowed snow") == "shadowed_snow"
    assert normalise_label("  Debris-Covered.Ice ") == "debris_covered_ice"
    assert normalise_label(3.0) == "3"
    assert normalise_label("2.0") == "2"
    assert normalise_label(np.int64(5)) == "5"


def test_aberle_preset_codes_and_names():
    v = Vocabulary.from_preset("aberle")
    assert v.classes == FACIES
    idx = {c: i for i, c in enumerate(FACIES)}
    # codes 1 snow, 2 shadowed snow, 3 ice, 4 rock, 5 water (ints, floats and text)
    got = v.encode([1, 2, 3, 4, 5, 2.0, "3"])
    assert got.tolist() == [idx["snow"], idx["snow"], idx["ice"], idx["debris"],
                            idx["water"], idx["snow"], idx["ice"]]
    names = v.encode(["Shadowed snow", "shadowed-snow", "rock", "Rock", "water", "Snow"])
    assert names.tolist() == [idx["snow"], idx["snow"], idx["debris"], idx["debris"],
                              idx["water"], idx["snow"]]
    assert v.facies_of("Shadowed snow") == "snow"
    assert v.facies_of("rock") == "debris"


def test_aberle_shadow_preset_keeps_the_illumination():
    v = Vocabulary.from_spec("aberle_shadow")
    assert v.facies_of("Shadowed snow") == "shadow"
    assert v.facies_of(2) == "shadow"
    assert v.facies_of(1) == "snow"


def test_table_may_be_a_preset_name():
    v = Vocabulary(table="aberle")
    assert v.preset == "aberle"
    assert v.facies_of("rock") == "debris"
    with pytest.raises(InputError, match="unknown label preset"):
        Vocabulary(table="nope")


def test_custom_table_and_synonyms():
    v = Vocabulary(classes=("ice", "snow", "debris"),
                   table={"Bare Ice": "ice", "moraine": "Debris", "7": "snow"})
    assert v.table == {"bare_ice": "ice", "moraine": "debris", "7": "snow"}
    got = v.encode(["bare ice", "MORAINE", 7, "7.0", "snow", "clean ice", "debris cover"])
    assert got.tolist() == [0, 2, 1, 1, 1, 0, 2]
    assert got.dtype == np.int64


def test_spec_table_overrides_the_preset():
    v = Vocabulary.from_spec({"preset": "aberle", "table": {"Rock": "ice"}})
    assert v.facies_of("rock") == "ice"
    assert v.facies_of("Shadowed snow") == "snow"
    assert v.to_dict()["preset"] == "aberle"


def test_unknown_labels_error_lists_the_vocabulary():
    v = Vocabulary()
    with pytest.raises(InputError) as ei:
        v.encode(["ice", "glacier mud", "lava", "ice"])
    msg = str(ei.value)
    assert "glacier mud" in msg and "lava" in msg
    for name in FACIES:
        assert name in msg
    with pytest.raises(InputError, match="lava"):
        v.facies_of("lava")
    # a code without a table is unknown too (no silent guess)
    with pytest.raises(InputError, match=r"\['4'\]"):
        v.encode([4])


def test_table_onto_non_facies_is_an_error():
    with pytest.raises(InputError, match="bedrock"):
        Vocabulary(table={"rock": "bedrock"})
    # the aberle table needs debris and water
    with pytest.raises(InputError, match="debris"):
        Vocabulary.from_preset("aberle", classes=("ice", "snow"))
    with pytest.raises(InputError, match="unknown label preset"):
        Vocabulary.from_preset("nope")
    with pytest.raises(InputError, match="unique"):
        Vocabulary(classes=("ice", "Ice"))
    with pytest.raises(InputError, match="unknown vocabulary key"):
        Vocabulary.from_spec({"classes": ["ice", "snow"], "mapping": {}})
    with pytest.raises(InputError, match="preset name or a mapping"):
        Vocabulary.from_spec(3)  # type: ignore[arg-type]


def test_describe_states_the_mapping():
    d = Vocabulary.from_preset("aberle").describe()
    assert "preset 'aberle'" in d
    assert "shadowed_snow → snow" in d and "rock → debris" in d and "2 → snow" in d
    assert str(list(FACIES)) in d
    assert "identity" in Vocabulary().describe()
    assert set(PRESETS["aberle"]) == set(Vocabulary.from_preset("aberle").to_dict()["table"])


def test_colour_table_greys_unknown_classes():
    ct = colour_table(["ice", "Snow", "mystery"])
    assert ct[0] == (8, 64, 129, 255)
    assert ct[1] == (240, 248, 255, 255)
    assert ct[2] == (127, 127, 127, 255)


# ------------------------------------------------------------------------------ reading
def _csv(tmp_path, df: pd.DataFrame, name: str = "points.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def test_csv_wkt_points_and_multipoints(tmp_path):
    df = pd.DataFrame({
        "class": [1, "Shadowed snow", 3, 5],
        "site_name": ["a", "a", "b", "c"],
        "image_date": ["2020-08-01"] * 4,
        "B2": [0.1, 0.2, 0.3, 0.4],
        "B3": [1.0, 2.0, 3.0, 4.0],
        "geometry": ["POINT (10 20)", "MULTIPOINT ((1 2), (3 4))", "POINT (7 8)",
                     "MULTIPOINT ((5 5))"],
    })
    pts = read_points(_csv(tmp_path, df), vocabulary=Vocabulary.from_preset("aberle"))
    fr = pts.frame
    assert len(pts) == 5                                  # the 2-point MULTIPOINT → 2 rows
    assert fr["row"].tolist() == [0, 1, 1, 2, 3]
    assert fr["x"].tolist() == [10, 1, 3, 7, 5] and fr["y"].tolist() == [20, 2, 4, 8, 5]
    assert fr["label"].tolist()[1:3] == ["Shadowed snow", "Shadowed snow"]
    assert pts.vocabulary.subset(pts.targets) == ("snow", "snow", "snow", "ice", "water")
    assert pts.groups.tolist() == ["a", "a", "a", "b", "c"]
    assert fr["scene"].tolist()[0] == "a@2020-08-01"      # scene defaults to glacier@date
    assert pts.feature_names == ("B2", "B3")              # auto: numeric, not meta
    np.testing.assert_array_equal(pts.features[:, 1], [1, 2, 2, 3, 4])
    assert pts.features.dtype == np.float32
    assert pts.crs.to_epsg() == 4326
    assert pts.report["multipoint_rows_split"] == 1
    assert pts.report["rows_read"] == 4 and pts.report["points"] == 5
    assert pts.class_counts() == {"ice": 1, "snow": 3, "water": 1}


def test_empty_geometries_are_counted(tmp_path):
    df = pd.DataFrame({"class": ["ice", "snow", "ice"],
                       "geometry": ["POINT EMPTY", "POINT (1 2)", "MULTIPOINT EMPTY"]})
    pts = read_points(df, vocabulary=Vocabulary(), bands=None)
    assert len(pts) == 1 and pts.frame["row"].tolist() == [1]
    assert pts.report["dropped_empty_geometry"] == 2
    assert "multipoint_rows_split" not in pts.report


def test_polygon_geometry_in_csv_is_refused():
    df = pd.DataFrame({"class": ["ice"], "geometry": ["POLYGON ((0 0, 1 0, 1 1, 0 0))"]})
    with pytest.raises(InputError, match="points or multipoints"):
        read_points(df, vocabulary=Vocabulary(), bands=None)
    with pytest.raises(InputError, match="WKT"):
        read_points(pd.DataFrame({"class": ["ice"], "geometry": ["not wkt"]}),
                    vocabulary=Vocabulary(), bands=None)


def test_xy_columns_and_band_selection(tmp_path):
    df = pd.DataFrame({"label": ["ice", "snow", "debris"], "glacier": [1, 1, 2],
                       "x": [500015.0, 500045.0, 500075.0], "y": [6699985.0] * 3,
                       "B2": [0.1, 0.2, 0.3], "B3": [1.0, 2.0, 3.0], "B4": [7.0, 8.0, 9.0]})
    path = _csv(tmp_path, df)
    pts = read_points(path, vocabulary=Vocabulary(), crs=UTM, bands=["B4", "B2"])
    assert pts.feature_names == ("B4", "B2")
    np.testing.assert_allclose(pts.features, [[7, 0.1], [8, 0.2], [9, 0.3]], rtol=1e-6)
    assert pts.frame["x"].tolist() == [500015.0, 500045.0, 500075.0]
    assert pts.crs.to_epsg() == 32607
    assert pts.groups.tolist() == ["1", "1", "2"]
    auto = read_points(path, vocabulary=Vocabulary(), crs=UTM)      # glacier/x/y not bands
    assert auto.feature_names == ("B2", "B3", "B4")
    none = read_points(path, vocabulary=Vocabulary(), crs=UTM, bands=None)
    assert none.features is None and none.feature_names == ()
    # lon/lat columns with the default CRS
    ll = read_points(pd.DataFrame({"class": ["ice"], "lon": [86.9], "lat": [27.9]}),
                     vocabulary=Vocabulary(), bands=None)
    assert ll.crs.to_epsg() == 4326 and ll.frame["x"].tolist() == [86.9]
    assert ll.groups.tolist() == ["all"] and "glacier" in ll.report


def test_missing_band_and_label_columns(tmp_path):
    df = pd.DataFrame({"class": ["ice", "snow"], "B2": [0.1, 0.2]})
    with pytest.raises(InputError, match=r"\['B8'\]"):
        read_points(df, vocabulary=Vocabulary(), bands=["B2", "B8"])
    with pytest.raises(InputError, match="no label column"):
        read_points(pd.DataFrame({"kind": ["ice"], "B2": [0.1]}), vocabulary=Vocabulary())
    with pytest.raises(InputError, match="'surface'"):
        read_points(df, vocabulary=Vocabulary(), label="surface")
    with pytest.raises(InputError, match="no numeric band columns"):
        read_points(pd.DataFrame({"class": ["ice"], "note": ["x"]}), vocabulary=Vocabulary())
    with pytest.raises(InputError, match="'all'"):
        read_points(df, vocabulary=Vocabulary(), bands="all")
    with pytest.raises(InputError, match="'east'"):
        read_points(df, vocabulary=Vocabulary(), x="east", y="north")
    with pytest.raises(InputError, match="unsupported point-label format"):
        read_points(_csv(tmp_path, df, "points.xlsx"), vocabulary=Vocabulary())
    with pytest.raises(InputError, match="unknown class label"):
        read_points(pd.DataFrame({"class": ["ice", "lava"], "B2": [0.1, 0.2]}),
                    vocabulary=Vocabulary())


def test_nan_rows_dropped_and_counted(tmp_path):
    df = pd.DataFrame({"class": ["ice", "snow", "firn", "ice"],
                       "B2": [0.1, np.nan, 0.3, 0.4], "B3": [1.0, 2.0, 3.0, np.nan]})
    pts = read_points(_csv(tmp_path, df), vocabulary=Vocabulary())
    assert pts.report["dropped_nan"] == 2
    assert pts.frame["row"].tolist() == [0, 2]
    assert pts.frame["label"].tolist() == ["ice", "firn"]
    np.testing.assert_allclose(pts.features, [[0.1, 1.0], [0.3, 3.0]], rtol=1e-6)
    all_nan = pd.DataFrame({"class": ["ice"], "B2": [np.nan]})
    with pytest.raises(InputError, match="no labelled points left"):
        read_points(all_nan, vocabulary=Vocabulary())


def test_features_for_a_model_band_set(tmp_path):
    df = pd.DataFrame({"class": ["ice", "snow"], "B2": [0.1, 0.2], "B3": [1.0, 2.0]})
    pts = read_points(df, vocabulary=Vocabulary())
    np.testing.assert_allclose(pts.features_for(["B3", "B2"]), [[1.0, 0.1], [2.0, 0.2]],
                               rtol=1e-6)
    with pytest.raises(InputError) as ei:
        pts.features_for(["B2", "B3", "B11"])
    assert "B11" in str(ei.value) and "retrain" in str(ei.value)
    sub = pts.select(np.array([False, True]))
    assert len(sub) == 1 and sub.features.tolist() == [[pytest.approx(0.2), 2.0]]
    formb = read_points(df, vocabulary=Vocabulary(), bands=None)
    with pytest.raises(InputError, match="no sampled band values"):
        formb.features_for(["B2"])


def test_geopackage_points(tmp_path):
    gdf = gpd.GeoDataFrame({"class": ["ice", "snow", "debris"], "glacier": ["g1", "g1", "g2"],
                            "B2": [0.1, 0.2, 0.3]},
                           geometry=shapely.points([500015, 500045, 500075],
                                                   [6699985, 6699955, 6699925]), crs=UTM)
    path = tmp_path / "pts.gpkg"
    gdf.to_file(path, engine="pyogrio")
    pts = read_points(path, vocabulary=Vocabulary())
    assert pts.crs.to_epsg() == 32607
    assert pts.frame["x"].tolist() == [500015, 500045, 500075]
    assert pts.frame["y"].tolist() == [6699985, 6699955, 6699925]
    assert pts.feature_names == ("B2",)
    assert pts.vocabulary.subset(pts.targets) == ("ice", "snow", "debris")


def test_polygon_sampling_counts():
    # lattice at multiples of the spacing, points strictly inside (boundary excluded):
    # a 100 m square with corners on the lattice → 9 × 9 interior points
    sq = gpd.GeoDataFrame({"class": ["ice"]}, geometry=[shapely.box(500000, 6700000, 500100,
                                                                    6700100)], crs=UTM)
    s = sample_polygons(sq, 10.0)
    assert len(s) == 81
    assert s.geometry.x.min() == 500010 and s.geometry.x.max() == 500090
    assert s["polygon"].tolist() == [0] * 81 and s["class"].tolist() == ["ice"] * 81
    # shifted by half a spacing: 500010 … 500100 in both axes → 10 × 10
    off = gpd.GeoDataFrame({"class": ["snow"]}, geometry=[shapely.box(500005, 6700005, 500105,
                                                                      6700105)], crs=UTM)
    assert len(sample_polygons(off, 10.0)) == 100
    capped = sample_polygons(sq, 10.0, max_points=7, seed=3)
    assert len(capped) == 7 and len(set(capped.geometry.x + 1e6 * capped.geometry.y)) == 7
    with pytest.raises(InputError, match="spacing"):
        sample_polygons(sq, 0.0)
    with pytest.raises(InputError, match="no polygon contains"):
        sample_polygons(sq, 1000.0)
    with pytest.raises(CRSError, match="projected CRS"):
        sample_polygons(sq.to_crs("EPSG:4326"), 10.0)


def test_geopackage_polygons_sampled(tmp_path):
    gdf = gpd.GeoDataFrame({"class": ["ice", "rock"], "glacier": ["g1", "g2"]},
                           geometry=[shapely.box(500000, 6700000, 500100, 6700100),
                                     shapely.box(500200, 6700000, 500240, 6700040)], crs=UTM)
    path = tmp_path / "polys.gpkg"
    gdf.to_file(path, engine="pyogrio")
    with pytest.raises(InputError, match="polygon_spacing"):
        read_points(path, vocabulary=Vocabulary.from_preset("aberle"), bands=None)
    pts = read_points(path, vocabulary=Vocabulary.from_preset("aberle"), bands=None,
                      polygon_spacing=10.0)
    assert len(pts) == 81 + 9
    assert pts.class_counts() == {"ice": 81, "debris": 9}
    assert pts.report["sampled_from_polygons"] == 2
    assert pts.crs.to_epsg() == 32607
    assert pts.features is None  # "polygon" (the polygon row) is not a band with bands=None


# ------------------------------------------------------------------------------ patches
@pytest.fixture
def scene():
    from glacierkit.dl.sources import SourceLayout, scene_from_arrays
    from glacierkit.io import Grid

    grid = Grid(crs=UTM, transform=Affine(30.0, 0, 500000.0, 0, -30.0, 6700000.0),
                shape=(20, 24))
    arr = np.arange(2 * 20 * 24, dtype=np.float32).reshape(2, 20, 24)
    arr[:, 5, 5] = np.nan
    layout = SourceLayout.standard(("red", "nir"))
    return scene_from_arrays(layout, grid, {"optical": arr}), arr


def _points_at(rows, cols, crs=UTM):
    rows, cols = np.asarray(rows, float), np.asarray(cols, float)
    x = 500000.0 + 30.0 * (cols + 0.5)
    y = 6700000.0 - 30.0 * (rows + 0.5)
    if crs != UTM:
        x, y = Transformer.from_crs(UTM, crs, always_xy=True).transform(x, y)
    df = pd.DataFrame({"class": ["ice"] * len(x), "glacier": [f"g{i}" for i in range(len(x))],
                       "x": x, "y": y})
    return read_points(df, vocabulary=Vocabulary(), bands=None, crs=crs)


def test_cut_patches_known_windows_and_counts(scene):
    stack, arr = scene
    # inside; at the corner (half outside → NaN padding); on nodata; outside ×2
    pts = _points_at([8, 0, 5, -3, 2], [10, 0, 5, 4, 30])
    patches, kept, counts = cut_patches(pts, stack, size=5)
    assert counts == {"points": 5, "kept": 2, "outside": 2, "nodata_centre": 1}
    assert kept.tolist() == [0, 1]
    assert patches.shape == (2, 2, 5, 5) and patches.dtype == np.float32
    np.testing.assert_array_equal(patches[0], arr[:, 6:11, 8:13])
    assert np.isnan(patches[1][:, :2, :]).all() and np.isnan(patches[1][:, :, :2]).all()
    np.testing.assert_array_equal(patches[1][:, 2:, 2:], arr[:, 0:3, 0:3])


def test_cut_patches_reprojects_points(scene):
    stack, arr = scene
    utm, _, _ = cut_patches(_points_at([8, 12], [10, 3]), stack, size=3)
    ll_pts = _points_at([8, 12], [10, 3], crs="EPSG:4326")
    assert ll_pts.crs.to_epsg() == 4326
    ll, kept, counts = cut_patches(ll_pts, stack, size=3)
    assert kept.tolist() == [0, 1]
    assert counts["kept"] == 2
    np.testing.assert_array_equal(ll, utm)
    np.testing.assert_array_equal(ll[1], arr[:, 11:14, 2:5])


def test_cut_patches_absent_group_is_not_nodata(scene):
    from glacierkit.dl.sources import SourceLayout, scene_from_arrays

    stack, arr = scene
    layout = SourceLayout.standard(("red", "nir"), dem=True)   # no DEM given
    no_dem = scene_from_arrays(layout, stack.grid, {"optical": arr})
    patches, kept, counts = cut_patches(_points_at([8, 5], [10, 5]), no_dem, size=3)
    assert kept.tolist() == [0]
    assert counts == {"points": 2, "kept": 1, "outside": 0, "nodata_centre": 1}
    np.testing.assert_array_equal(patches[0, :2], arr[:, 7:10, 9:12])
    assert np.isnan(patches[0, 2:]).all()


def test_cut_patches_bad_input(scene):
    stack, _ = scene
    pts = _points_at([8], [10])
    with pytest.raises(InputError, match="odd"):
        cut_patches(pts, stack, size=4)
    with pytest.raises(InputError, match="none of the 2 points"):
        cut_patches(_points_at([-5, 40], [0, 0]), stack, size=3)
    no_xy = read_points(pd.DataFrame({"class": ["ice"], "B2": [0.1]}), vocabulary=Vocabulary())
    with pytest.raises(InputError, match="no coordinates"):
        cut_patches(no_xy, stack, size=3)
    # a point with a missing coordinate counts as outside (no warning from the NaN)
    df = pd.DataFrame({"class": ["ice", "snow"], "x": [500000.0 + 30 * 10.5, np.nan],
                       "y": [6700000.0 - 30 * 8.5] * 2})
    half = read_points(df, vocabulary=Vocabulary(), bands=None, crs=UTM)
    _, kept, counts = cut_patches(half, stack, size=3)
    assert kept.tolist() == [0] and counts["outside"] == 1
