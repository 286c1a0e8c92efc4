"""MONAI datasets of volumes: records and cohorts, a DataLoader with a resize, caching."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gai_research.data.monai import records_from_cohort, to_monai
from gai_research.data.volume_errors import SeriesNotFoundError, VolumeError
from tests.volume_series import series_dir, synth_cohort

SIZE = (32, 32, 16)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_cohort(tmp_path_factory)


@pytest.fixture(scope="module")
def records(synth: Path) -> list[dict]:
    """A chest CT (256x256x64) and a head CT (256x256x32): different sizes, one batch."""
    return [
        {"image": str(series_dir(synth, "lung_nodule_ct")), "label": 1, "series_uid": "chest"},
        {"image": str(series_dir(synth, "stroke_ct")), "label": 0, "series_uid": "head"},
    ]


def _resize():
    from monai.transforms import Resized

    return Resized(keys="image", spatial_size=SIZE)


@pytest.mark.parametrize("cache", [False, True])
def test_dataloader_batches_two_resized_volumes(cache, records):
    from monai.data import CacheDataset, DataLoader, MetaTensor

    dataset = to_monai(records, [_resize()], cache=cache)
    assert isinstance(dataset, CacheDataset) == cache
    assert len(dataset) == 2
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    image = batch["image"]
    assert isinstance(image, MetaTensor)
    assert tuple(image.shape) == (2, 1, *SIZE)
    assert batch["label"].tolist() == [1, 0]
    assert batch["series_uid"] == ["chest", "head"]  # the records' own keys pass through
    assert all(uid.startswith("2.25.") for uid in image.meta["series_uid"])  # from the files
    assert image.meta["space"] == ["RAS", "RAS"]
    assert image.meta["modality"] == ["CT", "CT"]
    # MONAI's Resize scales the affine: the field of view stays (256 * 1.40625 mm, ...)
    assert np.allclose(
        np.linalg.norm(image.affine[0, :3, :3].numpy(), axis=0) * SIZE, [360, 360, 160]
    )


def test_items_are_channel_first_hounsfield_volumes(records):
    item = to_monai(records)[1]
    image = item["image"]
    assert tuple(image.shape) == (1, 256, 256, 32)
    assert image.meta["original_channel_dim"] == 0
    assert float(image.min()) < -900 and float(image.max()) > 900  # air and skull, in HU
    assert "source_files" not in image.meta  # per-slice lists would not collate


def test_a_single_transform_and_no_channel(records):
    from monai.transforms import ScaleIntensityRanged

    scale = ScaleIntensityRanged(keys="image", a_min=-1000, a_max=1000, b_min=0, b_max=1, clip=True)
    item = to_monai(records[:1], scale, channel_first=False)[0]
    assert tuple(item["image"].shape) == (256, 256, 64)
    assert float(item["image"].min()) >= 0.0 and float(item["image"].max()) <= 1.0


@pytest.mark.parametrize(
    ("bad", "words"),
    [({"label": 1}, "neither series_uid"), ("chest.dcm", "cohort or a list"), ([3], "not a dict")],
)
def test_bad_records_are_errors(bad, words):
    data = [bad] if isinstance(bad, dict) else bad
    with pytest.raises(VolumeError, match=words):
        to_monai(data)


# --- through the catalog --------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory):
    from tests.data_fixtures import pseudonymized_catalog

    return pseudonymized_catalog(tmp_path_factory)


def _cohort(catalog, name: str, **filters):
    from gai_research.data.catalog import open_catalog
    from gai_research.data.cohort import Cohort

    handle = open_catalog(catalog.snapshot, settings=catalog.settings())
    return Cohort.from_filters(name, handle, **filters)


def test_cohort_to_monai_loads_series_with_study_labels(catalog):
    from monai.data import DataLoader

    cohort = _cohort(catalog, "lung-ct", modality="CT", task="lung_nodule_ct")
    dataset = to_monai(cohort, [_resize()])
    assert len(dataset) == len(cohort.series) > 1
    labels = cohort.labels("lung_nodule_ct")
    positive = set(labels.loc[(labels.kind == "study") & (labels.value == 1), "study_uid"])
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert tuple(batch["image"].shape) == (2, 1, *SIZE)
    for study, label, n in zip(
        batch["study_uid"], batch["label"].tolist(), batch["n_findings"], strict=True
    ):
        assert label == float(study in positive)
        assert (int(n) > 0) == (study in positive)
    assert all(uid.startswith("2.25.") for uid in batch["image"].meta["series_uid"])


def test_mammography_cohort_gives_one_item_per_view(catalog):
    cohort = _cohort(catalog, "mg", modality="MG", task="breast_mg")
    records = records_from_cohort(cohort)
    assert len(records) == 4 * len(cohort.series)
    assert {r["view"] for r in records} == {"CC", "MLO"}
    assert {r["laterality"] for r in records} == {"L", "R"}
    item = to_monai(records, settings=catalog.settings(), snapshot=catalog.snapshot)[0]
    assert item["image"].shape[-1] == 1 and item["image"].meta["modality"] == "MG"
    assert not math.isnan(item["label"])


def test_an_unknown_series_is_named_when_the_dataset_is_built(catalog):
    with pytest.raises(SeriesNotFoundError, match="not in snapshot"):
        to_monai(
            [{"series_uid": "2.25.7", "label": 0}],
            settings=catalog.settings(),
            snapshot=catalog.snapshot,
        )
