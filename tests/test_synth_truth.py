"""gai_research.synth: the ground truth in labels/*.csv is what the pixels show.

Positions are measured in patient coordinates from ImagePositionPatient and
PixelSpacing, as a reader of the files would, never from the generator's indices.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from gai_research.synth import SITES, CohortSummary, StudyInfo, ensure_cohort

PATIENTS = 9
SEED = 0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> CohortSummary:
    return ensure_cohort(
        tmp_path_factory.getbasetemp() / "synth-cohort", patients=PATIENTS, seed=SEED
    )


@pytest.fixture(scope="module")
def labels(cohort: CohortSummary) -> dict[str, list[dict]]:
    tables = {}
    for path in sorted((cohort.out_dir / "labels").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            tables[path.name] = list(csv.DictReader(handle))
    return tables


@dataclass
class Volume:
    """An axial stack as a reader sees it: values in real units and the patient geometry."""

    values: np.ndarray  # (slices, rows, cols), rescaled
    x0: float
    y0: float
    dx: float  # along columns
    dy: float  # along rows
    z: np.ndarray  # per slice

    @property
    def voxel_mm3(self) -> float:
        return self.dx * self.dy * float(np.abs(np.diff(self.z)).mean())

    def index(self, x: float, y: float, z: float) -> tuple[int, int, int]:
        k = int(np.argmin(np.abs(self.z - z)))
        return k, round((y - self.y0) / self.dy), round((x - self.x0) / self.dx)

    def centroid(self, mask: np.ndarray) -> np.ndarray:
        k, r, c = np.nonzero(mask)
        return np.array(
            [self.x0 + self.dx * c.mean(), self.y0 + self.dy * r.mean(), self.z[k].mean()]
        )


def read_volume(cohort: CohortSummary, study: StudyInfo) -> Volume:
    files = sorted((cohort.out_dir / study.site / study.study_uid).rglob("*.dcm"))
    datasets = sorted(
        (pydicom.dcmread(p) for p in files), key=lambda d: float(d.ImagePositionPatient[2])
    )
    first = datasets[0]
    assert [float(v) for v in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    slope, intercept = float(first.get("RescaleSlope", 1)), float(first.get("RescaleIntercept", 0))
    values = np.stack([d.pixel_array for d in datasets]).astype(np.float32) * slope + intercept
    return Volume(
        values=values,
        x0=float(first.ImagePositionPatient[0]),
        y0=float(first.ImagePositionPatient[1]),
        dx=float(first.PixelSpacing[1]),
        dy=float(first.PixelSpacing[0]),
        z=np.array([float(d.ImagePositionPatient[2]) for d in datasets]),
    )


def studies(cohort: CohortSummary, site: str, task: str, positive: bool) -> list[StudyInfo]:
    found = [s for s in cohort.studies if (s.site, s.task, s.positive) == (site, task, positive)]
    assert found, f"no {task} study with positive={positive} at {site}"
    return found


def rows_of(labels: dict[str, list[dict]], table: str, study: StudyInfo) -> list[dict]:
    return [r for r in labels[table] if r["study_uid"] == study.study_uid]


def component_at(mask: np.ndarray, index: tuple[int, int, int]) -> np.ndarray:
    assert mask[index], f"labelled centre {index} is not in the finding"
    components, _ = ndimage.label(mask)
    return components == components[index]


@pytest.mark.parametrize("site", SITES)
def test_ct_nodules_sit_at_their_labels(cohort, labels, site: str) -> None:
    for study in studies(cohort, site, "lung_nodule_ct", True):
        nodules = rows_of(labels, "nodules_ct.csv", study)
        assert 1 <= len(nodules) <= 3
        volume = read_volume(cohort, study)
        for nodule in nodules:
            centre = np.array([float(nodule[k]) for k in ("x_mm", "y_mm", "z_mm")])
            index = volume.index(*centre)
            assert volume.values[index] == pytest.approx(40, abs=80)  # solid, not lung (-850)
            blob = component_at(volume.values > -400, index)
            diameter = (6 * blob.sum() * volume.voxel_mm3 / np.pi) ** (1 / 3)
            assert diameter == pytest.approx(float(nodule["diameter_mm"]), abs=2.5)
            assert np.linalg.norm(volume.centroid(blob) - centre) < 1.5


@pytest.mark.parametrize("site", SITES)
def test_negative_studies_have_no_findings(cohort, labels, site: str) -> None:
    tables = {
        "lung_nodule_ct": "nodules_ct.csv",
        "lung_nodule_dx": "findings_dx.csv",
        "breast_mg": "masses_mg.csv",
        "stroke_ct": "hemorrhage_ct.csv",
    }
    for task, table in tables.items():
        for study in studies(cohort, site, task, False):
            assert rows_of(labels, table, study) == []


@pytest.mark.parametrize("positive", [True, False], ids=["hemorrhage", "normal"])
@pytest.mark.parametrize("site", SITES)
def test_hemorrhage_volume_from_pixels(cohort, labels, site: str, positive: bool) -> None:
    for study in studies(cohort, site, "stroke_ct", positive):
        volume = read_volume(cohort, study)
        hyperdense = (volume.values >= 52) & (volume.values <= 90)
        (row,) = rows_of(labels, "hemorrhage_ct.csv", study) or [None]
        if not positive:
            assert row is None
            assert hyperdense.sum() * volume.voxel_mm3 < 100  # stray noise voxels only
            continue
        centre = np.array([float(row[k]) for k in ("x_mm", "y_mm", "z_mm")])
        blob = component_at(hyperdense, volume.index(*centre))
        assert blob.sum() * volume.voxel_mm3 / 1000 == pytest.approx(
            float(row["volume_ml"]), rel=0.02
        )
        assert np.linalg.norm(volume.centroid(blob) - centre) < 1.0


@pytest.mark.parametrize("positive", [True, False], ids=["dementia", "control"])
@pytest.mark.parametrize("site", SITES)
def test_hippocampal_volumes_from_pixels(cohort, labels, site: str, positive: bool) -> None:
    for study in studies(cohort, site, "dementia_mr", positive):
        (row,) = rows_of(labels, "volumes_mr.csv", study)
        assert row["group"] == ("dementia" if positive else "control")
        volume = read_volume(cohort, study)
        components, n = ndimage.label((volume.values >= 560) & (volume.values <= 640))
        sizes = ndimage.sum_labels(np.ones_like(components), components, range(1, n + 1))
        two = [int(i) + 1 for i in np.argsort(sizes)[-2:]]
        # the patient's left is +x, the higher x centroid
        right, left = sorted(two, key=lambda i: volume.centroid(components == i)[0])
        measured_left = (components == left).sum() * volume.voxel_mm3 / 1000
        measured_right = (components == right).sum() * volume.voxel_mm3 / 1000
        assert measured_left == pytest.approx(float(row["hippocampus_left_ml"]), rel=0.01)
        assert measured_right == pytest.approx(float(row["hippocampus_right_ml"]), rel=0.01)
        total = float(row["hippocampus_ml"])
        assert total == pytest.approx(measured_left + measured_right, rel=0.01)
        assert (total < 5.5) if positive else (total > 5.8)


def contrast(pixels: np.ndarray, row: int, col: int, radius_px: float) -> float:
    rr, cc = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    dist = np.hypot(rr - row, cc - col)
    inner = pixels[dist <= radius_px / 2].mean()
    ring = pixels[(dist >= radius_px + 4) & (dist <= radius_px + 10)].mean()
    return float(inner - ring)


@pytest.mark.parametrize("site", SITES)
def test_dx_nodule_at_its_label(cohort, labels, site: str) -> None:
    for study in studies(cohort, site, "lung_nodule_dx", True):
        (row,) = rows_of(labels, "findings_dx.csv", study)
        path = next((cohort.out_dir / site / study.study_uid).rglob("*.dcm"))
        ds = pydicom.dcmread(path)
        assert ds.SOPInstanceUID == row["sop_uid"]
        radius = float(row["diameter_mm"]) / 2 / float(ds.ImagerPixelSpacing[0])
        assert (
            contrast(ds.pixel_array.astype(float), int(row["row"]), int(row["col"]), radius) > 200
        )


@pytest.mark.parametrize("site", SITES)
def test_mg_mass_at_its_label_in_both_views(cohort, labels, site: str) -> None:
    for study in studies(cohort, site, "breast_mg", True):
        masses = rows_of(labels, "masses_mg.csv", study)
        assert sorted(m["view"] for m in masses) == ["CC", "MLO"]
        assert len({m["laterality"] for m in masses}) == 1
        by_sop = {}
        for path in (cohort.out_dir / site / study.study_uid).rglob("*.dcm"):
            ds = pydicom.dcmread(path)
            by_sop[ds.SOPInstanceUID] = ds
        for mass in masses:
            ds = by_sop[mass["sop_uid"]]
            assert (ds.ImageLaterality, ds.ViewPosition) == (mass["laterality"], mass["view"])
            radius = float(mass["diameter_mm"]) / 2 / float(ds.ImagerPixelSpacing[0])
            assert (
                contrast(ds.pixel_array.astype(float), int(mass["row"]), int(mass["col"]), radius)
                > 250
            )


def test_label_tables_reference_real_objects(cohort, labels) -> None:
    known: dict[str, set[str]] = defaultdict(set)
    for study in cohort.studies:
        for path in (cohort.out_dir / study.site / study.study_uid).rglob("*.dcm"):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            known[study.study_uid].update({ds.SeriesInstanceUID, ds.SOPInstanceUID})
    for name, rows in labels.items():
        for row in rows:
            assert row["study_uid"] in known, name
            for key in ("series_uid", "sop_uid"):
                if key in row:
                    assert row[key] in known[row["study_uid"]], name


def test_label_tables_have_documented_columns(labels) -> None:
    assert set(labels) >= {
        "studies.csv", "nodules_ct.csv", "findings_dx.csv", "masses_mg.csv", "volumes_mr.csv",
        "hemorrhage_ct.csv",
    }  # fmt: skip
    assert list(labels["hemorrhage_ct.csv"][0]) == [
        "study_uid",
        "series_uid",
        "x_mm",
        "y_mm",
        "z_mm",
        "volume_ml",
    ]
