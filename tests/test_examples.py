"""The named example-data registry: table honesty, look-up order, and the (simulated) cache fill.

No test downloads anything: ``pooch.retrieve`` is replaced for every test by a guard that fails,
and the download tests swap in a fake that copies local bytes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
from pathlib import Path

import pooch
import pytest

from glacierkit import examples
from glacierkit.errors import DatasetNotFoundError, DownloadError, InputError
from glacierkit.examples import ExampleDataset, ExampleFile

REQUIRED = {
    "carst_yahtse_landsat8_pair",
    "glaft_kaskawulsh",
    "geoutils_everest_exploradores",
    "aberle_snow_ice_training_points",
    "oggm_sample_data",
}
LOCAL_ONLY = {
    ("carst_yahtse_landsat8_pair", "yahtse_stable_rock.dbf"),
    ("carst_yahtse_landsat8_pair", "yahtse_stable_rock.prj"),
    ("carst_yahtse_landsat8_pair", "yahtse_stable_rock.shp"),
    ("carst_yahtse_landsat8_pair", "yahtse_stable_rock.shx"),
    ("itslive_datacube_subset_se_tibet", "itslive_pairs_subset.nc"),
    ("s1_rtc_tsho_rolpa_series", "MANIFEST.tsv"),
    ("s1_rtc_tsho_rolpa_series", "original_paths.tsv"),
}


def _real_root() -> Path | None:
    """The folder holding every registered dataset, found the way the library looks (no cache)."""
    for source, base in examples.data_dirs():
        if source == "cache" or not base.is_dir():
            continue
        if all((base / ds.folder).is_dir() for ds in examples.list_datasets()):
            return base
    return None


REAL_ROOT = _real_root()


@pytest.fixture(scope="session")
def data_root() -> Path:
    if REAL_ROOT is None:
        pytest.skip("../shared/data (or GLACIERKIT_DATA) with the example datasets not available")
    return REAL_ROOT


def _no_download(*args, **kwargs):
    raise AssertionError(f"pooch.retrieve must not be called here (args={args}, kwargs={kwargs})")


@pytest.fixture(autouse=True)
def _guard(monkeypatch, tmp_path):
    """Never touch the network or the user's cache."""
    monkeypatch.setattr(pooch, "retrieve", _no_download)
    monkeypatch.setenv(examples.ENV_CACHE, str(tmp_path / "cache"))


@pytest.fixture
def isolated(monkeypatch, tmp_path) -> Path:
    """Nothing but an empty cache: no GLACIERKIT_DATA, no shared folder."""
    monkeypatch.delenv(examples.ENV_DATA, raising=False)
    monkeypatch.setattr(examples, "_shared_data_dirs", lambda: [])
    return tmp_path / "cache"


class FakeRetrieve:
    """Stands in for ``pooch.retrieve``: writes known bytes (or copies a local file) per URL."""

    def __init__(self, sources: dict[str, bytes | Path]):
        self.sources = sources
        self.calls: list[dict] = []

    def __call__(self, url, known_hash=None, fname=None, path=None, processor=None,
                 downloader=None, progressbar=False):
        self.calls.append({"url": url, "known_hash": known_hash, "fname": fname, "path": path,
                           "progressbar": progressbar})
        dest = Path(path) / fname
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = self.sources[url]
        if isinstance(src, Path):
            shutil.copyfile(src, dest)
        else:
            dest.write_bytes(src)
        return str(dest)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TOY = {"a.txt": b"alpha\n", "sub/b.bin": bytes(range(256)) * 8}
DERIVED = {"derived.csv": b"x,y\n1,2\n"}


def _toy(name: str, contents: dict[str, bytes], local_only: dict[str, bytes] | None = None
         ) -> ExampleDataset:
    files = [ExampleFile(p, len(c), _sha(c), f"https://example.org/{name}/{p}")
             for p, c in contents.items()]
    files += [ExampleFile(p, len(c), _sha(c), None) for p, c in (local_only or {}).items()]
    return ExampleDataset(name=name, title=f"{name} title", folder=name, licence="CC0",
                          citation="nobody", description="test data", files=tuple(files))


@pytest.fixture
def toy(monkeypatch) -> ExampleDataset:
    ds = _toy("toy", TOY)
    monkeypatch.setitem(examples.DATASETS, ds.name, ds)
    return ds


@pytest.fixture
def toy_partial(monkeypatch) -> ExampleDataset:
    ds = _toy("toy_partial", TOY, DERIVED)
    monkeypatch.setitem(examples.DATASETS, ds.name, ds)
    return ds


# ---------------------------------------------------------------------------------------------
# The table itself
# ---------------------------------------------------------------------------------------------


def test_registry_contents():
    names = set(examples.DATASETS)
    assert REQUIRED <= names
    assert len(names) == 11
    assert [d.name for d in examples.list_datasets()] == list(examples.DATASETS)
    for ds in examples.list_datasets():
        assert ds.folder == ds.name
        assert ds.title and ds.licence and ds.citation and ds.description
        assert ds.files and ds.size_bytes == sum(f.size for f in ds.files) > 0
        paths = [f.path for f in ds.files]
        assert len(set(paths)) == len(paths)
        for f in ds.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f
            assert f.size > 0
            assert not f.path.startswith("/") and ".." not in f.path.split("/")
    assert sum(len(d.files) for d in examples.list_datasets()) == 712


def test_wgms_tables_registered():
    oggm = examples.DATASETS["oggm_sample_data"]
    paths = [f.path for f in oggm.files]
    assert sum(p.startswith("wgms/mbdata/mbdata_WGMS-") for p in paths) == 290
    assert sum(p.startswith("wgms/mb_profiles/profile_WGMS-") for p in paths) == 170
    assert "wgms/rgi_wgms_links_20220112.csv" in paths


def test_urls_are_commit_pinned_and_local_only_files_have_none():
    local = set()
    for ds in examples.list_datasets():
        repo = examples.SOURCES[ds.name]
        assert ds.source == f"https://github.com/{repo}"
        for f in ds.files:
            if f.url is None:
                local.add((ds.name, f.path))
                assert f.local_only
                continue
            full = re.fullmatch(rf"https://raw\.githubusercontent\.com/{repo}/[0-9a-f]{{40}}/\S+",
                                f.url)
            short = re.fullmatch(rf"https://github\.com/{repo}/raw/[0-9a-f]{{12}}/\S+", f.url)
            assert full or short, f.url
    assert local == LOCAL_ONLY
    assert examples.DATASETS["carst_yahtse_landsat8_pair"].local_only == tuple(
        sorted(p for n, p in LOCAL_ONLY if n == "carst_yahtse_landsat8_pair"))
    assert not examples.DATASETS["itslive_datacube_subset_se_tibet"].downloadable
    assert examples.DATASETS["glaft_kaskawulsh"].downloadable
    # One spot check of a URL built from PROVENANCE (repository, first commit, original path).
    yahtse = examples.DATASETS["carst_yahtse_landsat8_pair"]
    tif = yahtse.file("LC80630182016200LGN00_B8_yahtse.TIF")
    assert tif.url == ("https://raw.githubusercontent.com/whyjz/CARST/"
                       "9db3cdef19cfbbff6d6649f5d5d8d39cea13ea71/pixeltrack/Landsat8_example/"
                       "IMAGES/LC80630182016200LGN00_B8_yahtse.TIF")
    with pytest.raises(DatasetNotFoundError, match="not a registered file"):
        examples.DATASETS["glaft_kaskawulsh"].file("nope.tif")


# ---------------------------------------------------------------------------------------------
# Against the real data folder
# ---------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_every_registered_file_exists_with_its_size(data_root: Path):
    for ds in examples.list_datasets():
        folder = data_root / ds.folder
        for f in ds.files:
            assert (folder / f.path).stat().st_size == f.size, (ds.name, f.path)
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert on_disk - {"PROVENANCE.md"} == {f.path for f in ds.files}, ds.name


@pytest.mark.realdata
def test_hashes_match_provenance_prefixes(data_root: Path):
    row = re.compile(r"^\|([^|]+)\|(\d+)\|([0-9a-f]{16})\|")
    checked = 0
    for ds in examples.list_datasets():
        prov = data_root / ds.folder / "PROVENANCE.md"
        for line in prov.read_text(encoding="utf-8").splitlines():
            m = row.match(line)
            if m:
                f = ds.file(m.group(1).strip())
                assert f.size == int(m.group(2)) and f.sha256.startswith(m.group(3)), f.path
                checked += 1
    assert checked == 643 - 4  # the four polar PNGs have no table in their PROVENANCE.md


@pytest.mark.realdata
def test_verify_two_datasets_and_all_small_files(data_root: Path, monkeypatch):
    monkeypatch.setattr(examples, "_shared_data_dirs", lambda: [data_root])
    monkeypatch.delenv(examples.ENV_DATA, raising=False)
    for name in ("glaft_kaskawulsh", "carst_vavilov_velocity"):
        result = examples.verify(name)
        assert len(result) == len(examples.DATASETS[name].files) and all(result.values())
    for ds in examples.list_datasets():
        for f in ds.files:
            if f.size <= 64 * 1024:
                assert examples._sha256(data_root / ds.folder / f.path) == f.sha256, f.path


@pytest.mark.realdata
def test_locate_and_path_in_shared(data_root: Path, monkeypatch):
    monkeypatch.delenv(examples.ENV_DATA, raising=False)
    monkeypatch.setattr(examples, "_shared_data_dirs", lambda: [data_root])
    for ds in examples.list_datasets():
        assert examples.locate(ds.name) == (data_root / ds.folder, "shared")
    folder = examples.path("glaft_kaskawulsh")
    assert folder == data_root / "glaft_kaskawulsh"
    assert examples.path("glaft_kaskawulsh", "gps").is_dir()
    vx = examples.path("glaft_kaskawulsh", "20180304-20180405_velo-raw_vx.tif")
    assert vx.is_file()
    with pytest.raises(DatasetNotFoundError, match="not in example dataset"):
        examples.path("glaft_kaskawulsh", "missing.tif")
    for bad in ("../glaft_kaskawulsh/GLAFT_LICENSE.txt", "/etc/passwd"):
        with pytest.raises(InputError):
            examples.path("glaft_kaskawulsh", bad)


@pytest.mark.realdata
def test_shared_folder_beside_checkout_is_found(data_root: Path):
    repo = Path(__file__).resolve().parents[1]
    sibling = repo.parent / "shared" / "data"
    if not sibling.is_dir():
        pytest.skip("no shared/data beside this checkout")
    assert sibling.resolve() in examples._shared_data_dirs()


def test_shared_folder_from_working_directory(tmp_path, monkeypatch):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert (tmp_path / "shared" / "data").resolve() in examples._shared_data_dirs()


@pytest.mark.realdata
def test_env_var_overrides(data_root: Path, tmp_path, monkeypatch):
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "glaft_kaskawulsh").symlink_to(data_root / "glaft_kaskawulsh",
                                           target_is_directory=True)
    monkeypatch.setenv(examples.ENV_DATA, str(mine))
    monkeypatch.setattr(examples, "_shared_data_dirs", lambda: [data_root])
    dirs = examples.data_dirs()
    assert [s for s, _ in dirs] == ["GLACIERKIT_DATA", "shared", "cache"]
    assert dirs[0][1] == mine and dirs[2][1] == tmp_path / "cache"
    assert examples.locate("glaft_kaskawulsh") == (mine / "glaft_kaskawulsh", "GLACIERKIT_DATA")
    assert examples.path("glaft_kaskawulsh") == mine / "glaft_kaskawulsh"
    # A dataset not under GLACIERKIT_DATA falls through to the next place.
    assert examples.locate("carst_vavilov_velocity") == (
        data_root / "carst_vavilov_velocity", "shared")


@pytest.mark.realdata
def test_incomplete_folder_is_skipped(data_root: Path, tmp_path, monkeypatch):
    mine = tmp_path / "mydata"
    (mine / "glaft_kaskawulsh").mkdir(parents=True)
    shutil.copy(data_root / "glaft_kaskawulsh" / "GLAFT_LICENSE.txt", mine / "glaft_kaskawulsh")
    monkeypatch.setenv(examples.ENV_DATA, str(mine))
    monkeypatch.setattr(examples, "_shared_data_dirs", lambda: [data_root])
    assert examples.locate("glaft_kaskawulsh") == (data_root / "glaft_kaskawulsh", "shared")
    monkeypatch.setattr(examples, "_shared_data_dirs", lambda: [])
    assert examples.locate("glaft_kaskawulsh") is None
    with pytest.raises(DatasetNotFoundError, match=r"incomplete: 46 of 47 files"):
        examples.path("glaft_kaskawulsh")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_unknown_name():
    for call in (examples.path, examples.locate, examples.fetch, examples.verify):
        with pytest.raises(DatasetNotFoundError) as err:
            call("glacier_that_does_not_exist")
        msg = str(err.value)
        assert "glacier_that_does_not_exist" in msg
        for name in examples.DATASETS:
            assert name in msg
    assert issubclass(DatasetNotFoundError, FileNotFoundError)
    with pytest.raises(DatasetNotFoundError, match="Did you mean 'glaft_kaskawulsh'"):
        examples.path("glaft_kaskawulsk")


def test_missing_dataset_message(isolated: Path, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    monkeypatch.setenv(examples.ENV_DATA, str(empty))
    assert examples.locate("glaft_kaskawulsh") is None
    with pytest.raises(DatasetNotFoundError) as err:
        examples.path("glaft_kaskawulsh")
    msg = str(err.value)
    for part in ("'glaft_kaskawulsh'", "GLACIERKIT_DATA", str(empty / "glaft_kaskawulsh"),
                 "cache", str(isolated / "glaft_kaskawulsh"), "no such folder",
                 "download=True", "glacierkit data fetch glaft_kaskawulsh"):
        assert part in msg, part
    with pytest.raises(DatasetNotFoundError, match="was not found"):
        examples.verify("glaft_kaskawulsh")
    # A dataset with local-only files says a download cannot complete it.
    with pytest.raises(DatasetNotFoundError, match=r"cannot complete it: 4 of its 13 files"):
        examples.path("carst_yahtse_landsat8_pair")


def test_default_lookups_never_download(isolated: Path):
    # pooch.retrieve raises (autouse guard): none of these may reach it.
    for ds in examples.list_datasets():
        assert examples.locate(ds.name) is None
        with pytest.raises(DatasetNotFoundError):
            examples.path(ds.name)
        with pytest.raises(DatasetNotFoundError):
            examples.verify(ds.name)
    assert not isolated.exists()


def test_cache_dir(monkeypatch, tmp_path):
    assert examples.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv(examples.ENV_CACHE)
    assert examples.cache_dir() == Path(pooch.os_cache("glacierkit"))


# ---------------------------------------------------------------------------------------------
# Simulated downloads (pooch.retrieve replaced by a fake that writes local bytes)
# ---------------------------------------------------------------------------------------------


def test_fetch_fills_cache_and_reuses_it(toy: ExampleDataset, isolated: Path, monkeypatch):
    fake = FakeRetrieve({f.url: TOY[f.path] for f in toy.files})
    monkeypatch.setattr(pooch, "retrieve", fake)
    assert examples.locate("toy") is None
    folder = examples.path("toy", download=True)
    assert folder == isolated / "toy"
    assert {c["url"] for c in fake.calls} == {f.url for f in toy.files}
    for c in fake.calls:
        f = next(f for f in toy.files if f.url == c["url"])
        assert c["known_hash"] == f"sha256:{f.sha256}"
        assert Path(c["path"]) / c["fname"] == folder / f.path
    assert (folder / "sub" / "b.bin").read_bytes() == TOY["sub/b.bin"]
    assert examples.locate("toy") == (folder, "cache")
    assert examples.verify("toy") == {"a.txt": True, "sub/b.bin": True}
    # Cached and intact: neither path(download=True) nor fetch downloads again.
    n = len(fake.calls)
    assert examples.path("toy", "a.txt", download=True) == folder / "a.txt"
    assert examples.fetch("toy") == folder
    assert len(fake.calls) == n
    # A damaged cached file (same size, other bytes) is detected and fetched again.
    (folder / "a.txt").write_bytes(b"ALPHA\n")
    assert examples.verify("toy")["a.txt"] is False
    examples.fetch("toy")
    assert len(fake.calls) == n + 1 and (folder / "a.txt").read_bytes() == TOY["a.txt"]


def test_fetch_progress_flag(toy: ExampleDataset, isolated: Path, monkeypatch):
    fake = FakeRetrieve({f.url: TOY[f.path] for f in toy.files})
    monkeypatch.setattr(pooch, "retrieve", fake)
    examples.fetch("toy", progress=True)
    has_tqdm = importlib.util.find_spec("tqdm") is not None
    assert all(c["progressbar"] is has_tqdm for c in fake.calls)


def test_checksum_mismatch_raises_and_leaves_nothing(toy: ExampleDataset, isolated: Path,
                                                     monkeypatch):
    wrong = {f.url: TOY[f.path] for f in toy.files}
    wrong[toy.file("a.txt").url] = b"tampered\n"
    monkeypatch.setattr(pooch, "retrieve", FakeRetrieve(wrong))
    with pytest.raises(DownloadError) as err:
        examples.fetch("toy")
    msg = str(err.value)
    assert "checksum mismatch" in msg and "'a.txt'" in msg and toy.file("a.txt").sha256 in msg
    assert not (isolated / "toy" / "a.txt").exists()
    assert examples.locate("toy") is None
    assert issubclass(DownloadError, OSError)


def test_pooch_errors_become_download_errors(toy: ExampleDataset, isolated: Path, monkeypatch):
    def mismatch(url, known_hash=None, **kw):
        raise ValueError(f"SHA256 hash of downloaded file does not match the known hash: "
                         f"expected {known_hash}")

    monkeypatch.setattr(pooch, "retrieve", mismatch)
    with pytest.raises(DownloadError, match=r"could not download 'a\.txt'") as err:
        examples.path("toy", download=True)
    assert isinstance(err.value.__cause__, ValueError)

    def offline(url, **kw):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(DownloadError, match="network unreachable"):
        examples.fetch("toy")


def test_local_only_files_fail_a_cache_fill(toy_partial: ExampleDataset, isolated: Path,
                                            monkeypatch):
    fake = FakeRetrieve({f.url: TOY[f.path] for f in toy_partial.files if f.url})
    monkeypatch.setattr(pooch, "retrieve", fake)
    with pytest.raises(DownloadError) as err:
        examples.fetch("toy_partial")
    msg = str(err.value)
    assert "derived.csv" in msg and "local only" in msg and "GLACIERKIT_DATA" in msg
    assert len(fake.calls) == 2  # the downloadable files were fetched
    assert examples.locate("toy_partial") is None
    # Once the local-only file is put in place by hand, the cache copy is complete.
    (isolated / "toy_partial" / "derived.csv").write_bytes(DERIVED["derived.csv"])
    assert examples.fetch("toy_partial") == isolated / "toy_partial"
    assert examples.locate("toy_partial") == (isolated / "toy_partial", "cache")


def test_dataset_without_downloadable_files(isolated: Path):
    with pytest.raises(DownloadError, match=r"itslive_pairs_subset\.nc.*GLACIERKIT_DATA"):
        examples.fetch("itslive_datacube_subset_se_tibet")
    with pytest.raises(DownloadError, match="local only"):
        examples.path("itslive_datacube_subset_se_tibet", download=True)
    assert not (isolated / "itslive_datacube_subset_se_tibet").exists()


@pytest.mark.realdata
def test_simulated_fetch_of_a_real_dataset(data_root: Path, isolated: Path, monkeypatch):
    ds = examples.DATASETS["glaft_kaskawulsh"]
    fake = FakeRetrieve({f.url: data_root / ds.folder / f.path for f in ds.files})
    monkeypatch.setattr(pooch, "retrieve", fake)
    folder = examples.fetch("glaft_kaskawulsh")
    assert folder == isolated / "glaft_kaskawulsh"
    assert len(fake.calls) == len(ds.files) == 47
    assert examples.locate("glaft_kaskawulsh") == (folder, "cache")
    assert all(examples.verify("glaft_kaskawulsh").values())
    # Local-only files of a real dataset: the downloadable ones arrive, then a clear error.
    yahtse = examples.DATASETS["carst_yahtse_landsat8_pair"]
    fake.sources.update({f.url: data_root / yahtse.folder / f.path
                         for f in yahtse.files if f.url})
    with pytest.raises(DownloadError, match=r"yahtse_stable_rock\.shp.*GLACIERKIT_DATA"):
        examples.fetch("carst_yahtse_landsat8_pair")
    assert (isolated / yahtse.folder / "yahtse_srtm_dem.tif").is_file()
