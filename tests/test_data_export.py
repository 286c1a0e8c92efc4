"""gai.export: NIfTI images and masks, MONAI datalist, patient-level splits, manifest, resume.

The export is written against the volume loader's contract: ``load_series(series_uid,
settings=...)`` returns a MONAI MetaTensor with a RAS affine. Most tests use the
minimal stand-in below (test-only, clearly named), so they check the export and not
the loader; one test runs the platform's own loader when it is installed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gai_research.cli as cli
from gai_research.data.catalog import open_catalog
from gai_research.data.cohort import Cohort
from gai_research.data.errors import ExportError
from gai_research.data.splits import SPLIT_NAMES, assign_splits
from gai_research.data.training_export import JOURNAL, ExportResult, export
from tests.data_fixtures import CatalogFixture, copy_home, pseudonymized_catalog

TASK = "lung_nodule_ct"


# --- a minimal stand-in for gai_research.data.volume (tests only) ----------------------------
def _datasets(paths: list[Path]):
    import pydicom

    return [pydicom.dcmread(p) for p in paths]


def _to_metatensor(array: np.ndarray, affine_lps: np.ndarray):
    from monai.data import MetaTensor

    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps
    return MetaTensor(array.astype(np.float32), affine=ras, meta={"space": "RAS"})


def stand_in_load_series(series_uid: str, *, settings, snapshot=None):
    """TEST-ONLY STAND-IN for ``gai_research.data.volume.load_series``: the series' slices,
    sorted along the normal, as an (X, Y, Z) MetaTensor with a RAS affine."""
    from gai_research.store import open_snapshot

    reader = snapshot if snapshot is not None else open_snapshot(settings)
    rows = reader.query("SELECT path FROM instances WHERE series_uid = ?", [series_uid])
    slices = _datasets([settings.store_dir / p for p in rows.column("path").to_pylist()])
    iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
    along_row, along_col = iop[:3], iop[3:]
    normal = np.cross(along_row, along_col)
    slices.sort(key=lambda d: float(normal @ np.array(d.ImagePositionPatient, dtype=float)))
    first = np.array(slices[0].ImagePositionPatient, dtype=float)
    step = np.array(slices[1].ImagePositionPatient, dtype=float) - first
    row_mm, col_mm = (float(v) for v in slices[0].PixelSpacing)
    volume = np.stack(
        [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices],
        axis=-1,
    ).transpose(1, 0, 2)  # (rows, cols, slices) -> (X = columns, Y = rows, Z)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = along_row * col_mm, along_col * row_mm, step
    affine[:3, 3] = first
    return _to_metatensor(volume, affine)


def stand_in_load_instance(sop_uid: str, *, settings, snapshot=None):
    """TEST-ONLY STAND-IN for ``gai_research.data.volume.load_instance``: one 2-D image."""
    from gai_research.store import open_snapshot

    reader = snapshot if snapshot is not None else open_snapshot(settings)
    path = reader.query("SELECT path FROM instances WHERE sop_uid = ?", [sop_uid])["path"][0]
    (ds,) = _datasets([settings.store_dir / path.as_py()])
    spacing = ds.get("ImagerPixelSpacing") or ds.get("PixelSpacing") or [1.0, 1.0]
    affine = np.diag([float(spacing[1]), float(spacing[0]), 1.0, 1.0])
    return _to_metatensor(ds.pixel_array.T[..., np.newaxis], affine)


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def data_catalog(tmp_path_factory: pytest.TempPathFactory) -> CatalogFixture:
    return pseudonymized_catalog(tmp_path_factory)


@pytest.fixture(scope="module")
def nodule_cohort(data_catalog: CatalogFixture) -> Cohort:
    catalog = open_catalog(settings=data_catalog.settings())
    return Cohort.from_filters("nodule-ct", catalog, task=TASK, modality="CT")


@pytest.fixture(scope="module")
def exported(nodule_cohort: Cohort, tmp_path_factory) -> ExportResult:
    out = tmp_path_factory.mktemp("export") / "nodule-ct"
    return export(
        nodule_cohort, out, task=TASK, seed=3, loader=stand_in_load_series, progress=False
    )


def _datalist(result: ExportResult) -> dict:
    return json.loads(result.datalist.read_text(encoding="utf-8"))


def _entries(result: ExportResult) -> list[dict]:
    data = _datalist(result)
    return [entry | {"split": name} for name in SPLIT_NAMES for entry in data[name]]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- images and masks ------------------------------------------------------------------------
def test_every_series_becomes_one_image(exported: ExportResult, nodule_cohort: Cohort) -> None:
    entries = _entries(exported)
    assert sorted(e["series_uid"] for e in entries) == sorted(nodule_cohort.series_uids)
    assert exported.ok and exported.written == 2 * len(entries)  # image + mask each
    assert sum(exported.items.values()) == len(entries)


def test_nifti_is_readable_with_the_affine_and_voxels_preserved(
    exported: ExportResult, nodule_cohort: Cohort
) -> None:
    settings = nodule_cohort.catalog.settings
    for entry in _entries(exported)[:2]:
        image = nib.load(exported.out_dir / entry["image"])
        truth = stand_in_load_series(entry["series_uid"], settings=settings)
        assert image.shape == tuple(truth.shape)
        assert np.allclose(image.affine, truth.affine.numpy(), atol=1e-4)
        assert np.array_equal(np.asarray(image.dataobj), truth.numpy())
        assert image.header.get_sform(coded=True)[1] == 1  # scanner coordinates


def test_masks_put_the_nodules_where_the_image_shows_them(exported: ExportResult) -> None:
    labels = {e["series_uid"]: e for e in _entries(exported)}
    positives = 0
    for uid, entry in labels.items():
        image = nib.load(exported.out_dir / entry["image"])
        mask = np.asarray(nib.load(exported.out_dir / entry["label"]).dataobj)
        assert mask.shape == image.shape and set(np.unique(mask)) <= {0, 1}
        assert np.allclose(nib.load(exported.out_dir / entry["label"]).affine, image.affine)
        if entry["n_findings"] == 0:
            assert mask.sum() == 0, uid
            continue
        positives += 1
        hu = np.asarray(image.dataobj)[mask == 1]
        # nodules are drawn at +40 HU inside lung at -850 HU: the mask must sit on them
        assert np.mean(hu > -400) > 0.8, uid
    assert positives


def test_mask_volume_matches_the_labelled_diameters(exported: ExportResult) -> None:
    rows = _labels_csv(exported)
    for entry in _entries(exported):
        nodules = [
            r for r in rows if r["series_uid"] == entry["series_uid"] and r["kind"] == "nodule"
        ]
        if not nodules or len(nodules) > 1:
            continue
        image = nib.load(exported.out_dir / entry["label"])
        voxel = abs(np.linalg.det(image.affine[:3, :3]))
        measured = np.asarray(image.dataobj).sum() * voxel
        expected = np.pi / 6 * float(nodules[0]["diameter_mm"]) ** 3
        assert measured == pytest.approx(expected, rel=0.5)


def _labels_csv(result: ExportResult) -> list[dict]:
    import csv

    with (result.out_dir / "labels.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- datalist, splits, manifest --------------------------------------------------------------
@pytest.mark.parametrize("key", SPLIT_NAMES)
def test_datalist_loads_with_monai(exported: ExportResult, key: str) -> None:
    from monai.data.decathlon_datalist import load_decathlon_datalist

    items = load_decathlon_datalist(exported.datalist, is_segmentation=True, data_list_key=key)
    assert len(items) == exported.items[key] > 0
    for item in items:
        assert Path(item["image"]).is_file() and Path(item["label"]).is_file()
        assert {"patient", "study_uid", "series_uid", "site", "class"} <= set(item)


def test_datalist_metadata(exported: ExportResult, nodule_cohort: Cohort) -> None:
    data = _datalist(exported)
    assert data["cohort_hash"] == nodule_cohort.content_hash
    assert data["snapshot"] == nodule_cohort.snapshot and data["task"] == TASK
    assert data["labels"] == {"0": "background", "1": "nodule"} and data["seed"] == 3
    assert data["numTraining"] == len(data["training"])


def test_no_patient_is_in_two_splits(exported: ExportResult) -> None:
    splits_of = {}
    for entry in _entries(exported):
        splits_of.setdefault(entry["patient"], set()).add(entry["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    csv_rows = (exported.out_dir / "splits.csv").read_text().splitlines()[1:]
    assert {r.split(",")[0]: r.split(",")[1] for r in csv_rows} == {
        p: s.pop() for p, s in splits_of.items()
    }


def test_manifest_checksums_match_the_files(exported: ExportResult) -> None:
    manifest = json.loads(exported.manifest.read_text())
    files = manifest["files"]
    on_disk = {
        str(p.relative_to(exported.out_dir)) for p in exported.out_dir.rglob("*") if p.is_file()
    }
    assert on_disk == set(files) | {"manifest.json"}
    for relpath, entry in files.items():
        path = exported.out_dir / relpath
        assert _sha256(path) == entry["sha256"] and path.stat().st_size == entry["size"]
    assert manifest["cohort"]["name"] == "nodule-ct" and manifest["failed"] == []
    assert not (exported.out_dir / JOURNAL).exists()


# --- resuming --------------------------------------------------------------------------------
@pytest.fixture
def fresh_export(nodule_cohort: Cohort, tmp_path: Path):
    def run(**kwargs) -> ExportResult:
        options = {"task": TASK, "loader": stand_in_load_series, "progress": False} | kwargs
        return export(nodule_cohort, run.out, **options)

    run.out = tmp_path / "out"
    return run


@pytest.fixture
def earlier_export(exported: ExportResult, fresh_export) -> ExportResult:
    """A copy of the module's export where ``fresh_export`` writes (cheaper than exporting)."""
    shutil.copytree(exported.out_dir, fresh_export.out)
    return exported


def test_a_rerun_skips_files_with_matching_checksums(earlier_export, fresh_export) -> None:
    def volumes(result: ExportResult) -> dict:
        files = json.loads(result.manifest.read_text())["files"]
        return {k: v for k, v in files.items() if k.startswith(("images/", "labels/"))}

    again = fresh_export(seed=3)
    assert again.written == 0 and again.reused == earlier_export.written
    assert volumes(again) == volumes(earlier_export)
    assert (again.out_dir / "datalist.json").read_text() == earlier_export.datalist.read_text()


def test_a_damaged_or_missing_file_is_written_again(earlier_export, fresh_export) -> None:
    first = earlier_export
    entries = _entries(first)
    damaged = fresh_export.out / entries[0]["image"]
    damaged.write_bytes(damaged.read_bytes()[:100])
    (fresh_export.out / entries[1]["label"]).unlink()
    again = fresh_export(seed=3)
    assert again.written == 2 and again.reused == first.written - 2
    files = json.loads(again.manifest.read_text())["files"]
    assert _sha256(damaged) == files[entries[0]["image"]]["sha256"]


def test_an_interrupted_export_resumes_and_leaves_no_partial_file(fresh_export) -> None:
    calls = []

    def interrupted(series_uid, **kwargs):
        calls.append(series_uid)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return stand_in_load_series(series_uid, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        fresh_export(loader=interrupted)
    assert len(calls) == 3
    out = fresh_export.out
    assert (out / JOURNAL).is_file() and not (out / "manifest.json").exists()
    assert not list(out.rglob("*.part"))
    (out / "images" / ".tmp-leftover.part").write_bytes(b"half")  # what a killed run leaves
    resumed = fresh_export(loader=interrupted)
    assert resumed.reused == 4  # the two series (image + mask) done before the interruption
    assert resumed.written == 2 * sum(resumed.items.values()) - 4
    assert not list(out.rglob("*.part"))


def test_a_folder_with_other_files_is_refused(nodule_cohort: Cohort, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty and holds no earlier export"):
        export(nodule_cohort, tmp_path, task=TASK, loader=stand_in_load_series, progress=False)


def test_another_cohorts_export_is_replaced_only_on_request(
    earlier_export, nodule_cohort: Cohort, tmp_path: Path
) -> None:
    smaller = Cohort.from_filters("one-site", nodule_cohort.catalog, task=TASK, site="SUWON")
    with pytest.raises(ExportError, match="holds the export of cohort 'nodule-ct'"):
        export(smaller, tmp_path / "out", task=TASK, loader=stand_in_load_series, progress=False)
    result = export(
        smaller, tmp_path / "out", task=TASK, loader=stand_in_load_series, progress=False,
        overwrite=True,
    )  # fmt: skip
    assert result.removed > 0
    kept = {p.name for p in (tmp_path / "out" / "images").iterdir()}
    assert kept == {f"{uid}.nii.gz" for uid in smaller.series_uids}


def test_a_series_that_cannot_be_loaded_is_reported_and_left_out(
    nodule_cohort: Cohort, tmp_path: Path
) -> None:
    cohort = Cohort.from_filters("icheon", nodule_cohort.catalog, task=TASK, site="ICHEON")
    bad = cohort.series_uids[0]

    def flaky(series_uid, **kwargs):
        if series_uid == bad:
            raise ValueError("slices of different sizes")
        return stand_in_load_series(series_uid, **kwargs)

    result = export(cohort, tmp_path / "out", task=TASK, loader=flaky, progress=False)
    assert result.failed == [(bad, "ValueError: slices of different sizes")] and not result.ok
    assert bad not in {e["series_uid"] for e in _entries(result)}
    assert json.loads(result.manifest.read_text())["failed"][0]["uid"] == bad


# --- without a task, projection images, the platform's loader --------------------------------
def test_export_without_a_task_and_projection_images_one_by_one(
    data_catalog: CatalogFixture, tmp_path: Path
) -> None:
    catalog = open_catalog(settings=data_catalog.settings())
    cohort = Cohort.from_filters("mg-dx", catalog, modality=["MG", "DX"])
    result = export(
        cohort, tmp_path / "out", loader=stand_in_load_series,
        instance_loader=stand_in_load_instance, progress=False,
    )  # fmt: skip
    entries = _entries(result)
    assert len(entries) == len(cohort.instances)  # one image per view
    assert all("label" not in e and e["sop_uid"] for e in entries)
    assert {e["view"] for e in entries if e["modality"] == "MG"} == {"CC", "MLO"}
    assert not (result.out_dir / "labels.csv").exists()


def test_classification_tasks_put_the_class_in_label(data_catalog, tmp_path: Path) -> None:
    catalog = open_catalog(settings=data_catalog.settings())
    cohort = Cohort.from_filters("stroke", catalog, task="stroke_ct")
    result = export(cohort, tmp_path / "out", task="stroke_ct", loader=stand_in_load_series,
                    progress=False)  # fmt: skip
    entries = _entries(result)
    assert {e["label"] for e in entries} == {0, 1}
    assert all(("hemorrhage_ml" in e) == (e["label"] == 1) for e in entries)


def test_the_platform_loader_when_installed(data_catalog: CatalogFixture, tmp_path: Path) -> None:
    pytest.importorskip("gai_research.data.volume")
    catalog = open_catalog(settings=data_catalog.settings())
    study = catalog.studies(modality="CT", task=TASK, label=1)["study_uid"].iloc[0]
    mg = catalog.studies(modality="MG")["study_uid"].iloc[0]
    cohort = Cohort.from_filters("platform", catalog, study_uid=[study, mg])
    result = export(cohort, tmp_path / "out", progress=False)
    assert result.ok, result.failed
    entries = _entries(result)
    ct = next(e for e in entries if e["modality"] == "CT")
    truth = stand_in_load_series(ct["series_uid"], settings=catalog.settings)
    image = nib.load(result.out_dir / ct["image"])
    assert np.allclose(image.affine, truth.affine.numpy(), atol=1e-3)
    assert np.array_equal(np.asarray(image.dataobj), truth.numpy())
    assert sum(e["modality"] == "MG" for e in entries) == 4


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"format": "dicom"}, "unknown export format"),
        ({"splits": (0.5, 0.5)}, "three fractions"),
        ({"splits": (0.5, 0.3, 0.3)}, "sum to 1"),
        ({"splits": (0.0, 0.5, 0.5)}, "training share"),
        ({"seed": "zero"}, "seed must be a whole number"),
        ({"task": "nope"}, "unknown task"),
    ],
)
def test_bad_export_options_are_refused(nodule_cohort, tmp_path, kwargs, says) -> None:
    with pytest.raises(ExportError if "task" not in kwargs else Exception, match=says):
        export(
            nodule_cohort, tmp_path / "out", loader=stand_in_load_series, progress=False, **kwargs
        )


def test_export_takes_a_saved_cohort_name_or_refuses_other_things(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="takes a Cohort"):
        export(42, tmp_path / "out")  # type: ignore[arg-type]


def test_cli_export(data_catalog, tmp_path, monkeypatch, capsys) -> None:
    settings = copy_home(data_catalog, tmp_path)
    monkeypatch.setenv("GAI_HOME", str(settings.home))
    monkeypatch.delenv("GAI_CONFIG", raising=False)
    monkeypatch.setattr(
        "gai_research.data.training_export._default_loaders",
        lambda: (stand_in_load_series, stand_in_load_instance),
    )
    catalog = open_catalog(settings=settings)
    Cohort.from_filters("cli-export", catalog, task=TASK, site="ICHEON").save()
    out = tmp_path / "exp"
    argv = ["export", "cli-export", "--format", "nifti", "--out", str(out), "--task", TASK,
            "--seed", "1", "--quiet"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "exported cli-export" in capsys.readouterr().out and (out / "DATA_CARD.md").is_file()
    assert cli.main([*argv[:-1], "--splits", "1,1"]) == 1
    assert "three fractions" in capsys.readouterr().err


# --- splits: properties over seeds -----------------------------------------------------------
STRATA = st.dictionaries(
    st.text("ABCDEFGHJK0123456789", min_size=3, max_size=8),
    st.tuples(
        st.sampled_from(["SUWON", "ANSEONG", "ICHEON", "ANSEONG+SUWON"]),
        st.sampled_from([0, 1, None]),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(strata=STRATA, seed=st.integers(0, 2**32))
def test_every_patient_lands_in_exactly_one_split(strata, seed) -> None:
    split = assign_splits(strata, (0.7, 0.15, 0.15), seed)
    assert set(split) == set(strata) and set(split.values()) <= set(SPLIT_NAMES)
    assert split == assign_splits(dict(reversed(list(strata.items()))), (0.7, 0.15, 0.15), seed)
    counts = Counter(split.values())
    if len(strata) >= 3:
        assert all(counts[name] >= 1 for name in SPLIT_NAMES)
    for name, fraction in zip(SPLIT_NAMES, (0.7, 0.15, 0.15), strict=True):
        assert abs(counts[name] - fraction * len(strata)) <= 3


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_each_stratum_follows_the_fractions(seed) -> None:
    strata = {
        f"P{i:03d}": (["SUWON", "ANSEONG", "ICHEON"][i % 3], int(i % 5 == 0)) for i in range(300)
    }
    split = assign_splits(strata, (0.6, 0.2, 0.2), seed)
    for stratum in set(strata.values()):
        members = [p for p, s in strata.items() if s == stratum]
        counts = Counter(split[p] for p in members)
        for name, fraction in zip(SPLIT_NAMES, (0.6, 0.2, 0.2), strict=True):
            assert abs(counts[name] - fraction * len(members)) <= 2, (stratum, counts)


def test_seeds_change_the_split_and_zero_fractions_stay_empty() -> None:
    strata = {f"P{i}": ("SUWON", i % 2) for i in range(40)}
    assert assign_splits(strata, seed=0) != assign_splits(strata, seed=1)
    assert "test" not in assign_splits(strata, (0.8, 0.2, 0.0), seed=0).values()


# --- NIfTI helpers ---------------------------------------------------------------------------
class _Volume:
    """What a loader may return besides a MetaTensor: an array, an affine, a meta dict."""

    def __init__(self, array, affine, space="RAS"):
        self.array, self.affine, self.meta = array, affine, {"space": space}


@pytest.mark.parametrize(
    ("volume", "shape", "affine", "dtype"),
    [
        (_Volume(np.zeros((4, 5, 6)), np.eye(4)), (4, 5, 6), np.eye(4), np.int16),
        (
            _Volume(np.full((4, 5, 6), 0.5), np.eye(4), "LPS"),
            (4, 5, 6),
            np.diag([-1, -1, 1, 1]),
            np.float32,
        ),
        (_Volume(np.zeros((1, 4, 5, 6)), np.eye(4)), (4, 5, 6), np.eye(4), np.int16),
        (_Volume(np.zeros((4, 5), dtype=np.uint16), np.eye(4)), (4, 5, 1), np.eye(4), np.uint16),
        (
            _Volume(np.zeros((4, 5), dtype=bool), np.diag([2.0, 3.0, 1.0])),
            (4, 5, 1),
            np.diag([2.0, 3.0, 1, 1]),
            np.uint8,
        ),
    ],
    ids=["ras", "lps", "channel-first", "2-d", "2-d-affine"],
)
def test_volume_array_layouts(volume, shape, affine, dtype) -> None:
    from gai_research.data.nifti import volume_array

    array, ras = volume_array(volume)
    assert array.shape == shape and array.dtype == dtype and np.allclose(ras, affine)


@pytest.mark.parametrize(
    ("sphere", "voxels"),
    [
        ((-10.0, -10.0, 10.0, 8.0), pytest.approx(np.pi / 6 * 8**3, rel=0.1)),  # inside
        ((-10.2, -9.8, 10.1, 0.2), 1),  # smaller than a voxel: its centre voxel
        ((500.0, 0.0, 0.0, 10.0), 0),  # outside the volume
    ],
    ids=["inside", "tiny", "outside"],
)
def test_sphere_mask(sphere, voxels) -> None:
    from gai_research.data.nifti import sphere_mask

    mask = sphere_mask((20, 20, 20), np.eye(4), [sphere])  # 1 mm voxels, RAS = index
    assert mask.sum() == voxels
    if mask.sum():
        assert mask[10, 10, 10] == 1  # LPS (-10, -10, 10) is RAS (10, 10, 10)


def test_the_same_volume_gives_the_same_bytes() -> None:
    from gai_research.data.nifti import encode_nifti

    array = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    assert encode_nifti(array, np.eye(4)) == encode_nifti(array.copy(), np.eye(4))
