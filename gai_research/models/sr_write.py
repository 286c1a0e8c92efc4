"""A prediction as a DICOM TID 1500 measurement report (Comprehensive 3D SR, highdicom).

The report goes back to a PACS beside the images it describes, so it is built to be read
by other software, not only by :func:`gai_research.models.sr_read.read_sr`:

* same patient and study as the source images, a new series (``series_number``);
* the model is the device observer and the algorithm of every measurement group
  (name, version, vendor), and the series description says its origin
  (vendor / baseline / simulator) so a baseline is never mistaken for a product;
* one TID 1410 planar-ROI group per finding: a SCOORD3D point in the source frame of
  reference (CT, MR) or a SCOORD point on the referenced image (DX, MG; DICOM pixel
  convention, so 0-based pixel centre ``(row, col)`` is written ``(col + 0.5, row + 0.5)``),
  the diameter in mm and the score as "Certainty of Finding";
* one TID 1501 group per volume (mL), with its anatomic site where we know one;
* one TID 1501 group ``study`` with the study-level score ("Certainty of Impression") and
  named scores (private codes, scheme ``99GAI``);
* the source images as current requested procedure evidence.

Strict on write: a finding that cannot be placed (world coordinates without a frame of
reference, a pixel position on an image that is not among the sources) is a
:class:`~gai_research.models.errors.ModelInputError`, not a silently dropped finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gai_research.models import sr_codes as C
from gai_research.models.errors import ModelInputError
from gai_research.models.types import Finding, ModelInfo, Prediction, VolumeMeasurement

if TYPE_CHECKING:
    from pydicom import Dataset

__all__ = ["write_sr"]

VOLUME_MODALITIES = {"CT", "MR", "PT", "NM"}
_TYPE2_HEADER = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
# anatomic site used to carry a finding's laterality, by task
_TASK_SITES = {
    "breast_mg": C.SITE_CODES["breast"],
    "lung_nodule_ct": C.SITE_CODES["lung"],
    "lung_nodule_dx": C.SITE_CODES["lung"],
    "stroke_ct": C.SITE_CODES["brain"],
    "dementia_mr": C.SITE_CODES["brain"],
}
_BODY_STRUCTURE = ("SCT", "123037004", "Anatomical or acquired body structure")


def write_sr(
    prediction: Prediction,
    info: ModelInfo,
    source_datasets: Sequence[Dataset],
    *,
    series_number: int = 900,
    manufacturer: str | None = None,
    series_description: str | None = None,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> Dataset:
    """The prediction as a Comprehensive 3D SR of the source images' study.

    ``source_datasets`` are the study's images (headers are enough:
    ``stop_before_pixels=True``); every image listed becomes evidence, and findings on
    projection images must name one of them by ``sop_uid``. ``series_instance_uid`` /
    ``sop_instance_uid``: fixed UIDs (e.g. derived from the study and model, so storing a
    result again replaces it in the PACS); new random ones by default.
    """
    import highdicom as hd

    sources = list(source_datasets)
    if not sources:
        raise ModelInputError(
            "no source images to reference", hint="pass the study's datasets", model=info.name
        )
    studies = {str(ds.StudyInstanceUID) for ds in sources}
    if studies != {prediction.study_uid}:
        raise ModelInputError(
            "the source images do not all belong to the predicted study",
            hint="pass the datasets of prediction.study_uid only",
            model=info.name,
            study_uid=prediction.study_uid,
        )
    index = _SourceIndex(sources)
    algorithm = hd.sr.AlgorithmIdentification(name=info.name, version=info.version)
    groups: list[Any] = []
    study_group = _study_group(prediction, algorithm)
    if study_group is not None:
        groups.append(study_group)
    for number, finding in enumerate(prediction.findings, start=1):
        groups.append(_finding_group(number, finding, info, index, algorithm))
    for volume in prediction.volumes:
        groups.append(_volume_group(volume, index, algorithm))
    if not groups:  # TID 1500 needs one group: an empty study group says "nothing measured"
        groups.append(_study_group(prediction, algorithm, always=True))

    observer = hd.sr.ObserverContext(
        observer_type=C.code(("DCM", "121007", "Device")),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_device_uid(info),
            name=info.name[:64],
            manufacturer_name=info.vendor[:64],
            model_name=f"{info.name} {info.version}"[:64],
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=C.code(C.procedure_code(index.modality, info.task)),
        imaging_measurements=groups,
        title=C.code(("DCM", "126000", "Imaging Measurement Report")),
    )
    description = series_description or f"{info.name} {info.version} ({info.origin} AI result)"
    sr = hd.sr.Comprehensive3DSR(
        evidence=[_header_for_sr(sources[0]), *sources[1:]],
        content=report,
        series_instance_uid=series_instance_uid or hd.UID(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or hd.UID(),
        instance_number=1,
        manufacturer=(manufacturer or info.vendor)[:64],
        is_complete=True,
        series_description=description[:64],
        # UTF-8 whatever the sources use (e.g. ISO 2022 IR 149 with an empty first value,
        # which highdicom refuses); pydicom has decoded their names already
        specific_character_set="ISO_IR 192",
    )
    if _uses_private_scheme(sr):
        _declare_private_scheme(sr)
    return sr


class _SourceIndex:
    """The source images by SOP instance and series, with the study's main modality."""

    def __init__(self, sources: list[Dataset]) -> None:
        self.by_sop = {str(ds.SOPInstanceUID): ds for ds in sources}
        self.by_series: dict[str, list[Dataset]] = {}
        for ds in sources:
            self.by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
        modalities = [str(ds.get("Modality", "")).upper() for ds in sources]
        self.modality = max(set(modalities), key=modalities.count) if modalities else ""

    def volume_series(self, series_uid: str | None) -> list[Dataset]:
        """Images of ``series_uid``, or of the first volume series with a frame of reference."""
        if series_uid is not None and series_uid in self.by_series:
            return self.by_series[series_uid]
        for datasets in self.by_series.values():
            if "FrameOfReferenceUID" in datasets[0] and (
                str(datasets[0].get("Modality", "")).upper() in VOLUME_MODALITIES
            ):
                return datasets
        return []


def _study_group(prediction: Prediction, algorithm: Any, *, always: bool = False) -> Any:
    import highdicom as hd

    measurements = []
    if prediction.score is not None:
        measurements.append(_measurement(C.STUDY_SCORE, prediction.score, C.NO_UNITS, algorithm))
    for name, value in sorted(prediction.scores.items()):
        measurements.append(_measurement(C.private(name), float(value), C.NO_UNITS, algorithm))
    if not measurements and not always:
        return None
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=C.STUDY_GROUP_ID),
        algorithm_id=algorithm,
        measurements=measurements or None,
    )


def _finding_group(
    number: int, finding: Finding, info: ModelInfo, index: _SourceIndex, algorithm: Any
) -> Any:
    import highdicom as hd
    import numpy as np

    label = finding.label or "finding"
    tracking = hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{label} {number}")
    source_image = None
    region = None
    if finding.has_world_position:
        series = index.volume_series(finding.series_uid)
        if not series or "FrameOfReferenceUID" not in series[0]:
            raise ModelInputError(
                f"finding {number} has world coordinates but no source image has a frame of reference",
                hint="pass the datasets of the series the finding is on",
                model=info.name,
            )
        point = (float(finding.x_mm), float(finding.y_mm), float(finding.z_mm))
        region = hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POINT,
            graphic_data=np.array([point]),
            frame_of_reference_uid=str(series[0].FrameOfReferenceUID),
        )
        nearest = _nearest_slice(series, point)
        if nearest is not None:
            source_image = hd.sr.SourceImageForMeasurement(
                referenced_sop_class_uid=str(nearest.SOPClassUID),
                referenced_sop_instance_uid=str(nearest.SOPInstanceUID),
            )
    elif finding.row_px is not None and finding.col_px is not None:
        image = index.by_sop.get(finding.sop_uid or "")
        if image is None:
            raise ModelInputError(
                f"finding {number} is on an image that is not among the source images",
                hint="pass every image of the study, or give the finding's sop_uid",
                model=info.name,
            )
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POINT,
            graphic_data=np.array([[finding.col_px + 0.5, finding.row_px + 0.5]]),
            source_image=hd.sr.SourceImageForRegion(
                referenced_sop_class_uid=str(image.SOPClassUID),
                referenced_sop_instance_uid=str(image.SOPInstanceUID),
            ),
        )
    measurements = []
    if finding.diameter_mm is not None:
        measurements.append(_measurement(C.DIAMETER, finding.diameter_mm, C.MM, None))
    measurements.append(
        _measurement(
            C.FINDING_SCORE,
            finding.score,
            C.NO_UNITS,
            None,
            images=[source_image] if source_image is not None else None,
        )
    )
    common = {
        "tracking_identifier": tracking,
        "finding_type": C.code(C.label_code(finding.label)),
        "algorithm_id": algorithm,
        "finding_sites": _laterality_site(finding.laterality, info.task),
        "measurements": measurements,
    }
    if region is None:  # a finding without a position: a plain measurement group
        return hd.sr.MeasurementsAndQualitativeEvaluations(**common)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=region, **common)


def _volume_group(volume: VolumeMeasurement, index: _SourceIndex, algorithm: Any) -> Any:
    import highdicom as hd

    site = C.volume_site(volume.name)
    finding_sites = None
    if site is not None:
        location, laterality = site
        finding_sites = [
            hd.sr.FindingSite(
                anatomic_location=C.code(location),
                laterality=C.code(laterality) if laterality else None,
            )
        ]
    finding_type = C.LABEL_CODES.get(volume.name.lower())
    sources = None
    series = index.by_series.get(volume.series_uid or "")
    if series:
        sources = [
            hd.sr.SourceImageForMeasurementGroup(
                referenced_sop_class_uid=str(ds.SOPClassUID),
                referenced_sop_instance_uid=str(ds.SOPInstanceUID),
            )
            for ds in series[:1]
        ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=volume.name[:64]),
        finding_type=C.code(finding_type) if finding_type else None,
        finding_sites=finding_sites,
        algorithm_id=algorithm,
        measurements=[_measurement(C.VOLUME, volume.volume_ml, C.ML, None)],
        source_images=sources,
    )


def _measurement(
    concept: C.Concept, value: float, unit: C.Concept, algorithm: Any, images: list | None = None
) -> Any:
    import highdicom as hd

    return hd.sr.Measurement(
        name=C.code(concept),
        value=float(value),
        unit=C.code(unit),
        algorithm_id=algorithm,
        referenced_images=images,
    )


def _laterality_site(laterality: str | None, task: str) -> list | None:
    import highdicom as hd

    side = C.laterality_code(laterality)
    if side is None:
        return None
    location = _TASK_SITES.get(task, _BODY_STRUCTURE)
    return [hd.sr.FindingSite(anatomic_location=C.code(location), laterality=C.code(side))]


def _nearest_slice(series: list[Dataset], point: tuple[float, float, float]) -> Dataset | None:
    """The image of ``series`` whose plane is closest to ``point`` (None without geometry)."""
    import numpy as np

    best, best_distance = None, float("inf")
    for ds in series:
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            continue
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        distance = abs(
            float(
                np.dot(normal, np.asarray(point) - np.asarray(ds.ImagePositionPatient, dtype=float))
            )
        )
        if distance < best_distance:
            best, best_distance = ds, distance
    return best


def _header_for_sr(first: Dataset) -> Dataset:
    """The first source image with the patient/study attributes highdicom copies present
    (a pseudonymized header may lack a type 2 attribute; the SR then has it empty)."""
    if all(keyword in first for keyword in _TYPE2_HEADER):
        return first
    from copy import copy

    header = copy(first)
    for keyword in _TYPE2_HEADER:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


def _device_uid(info: ModelInfo) -> str:
    """A stable device observer UID per model name and version."""
    from pydicom.uid import generate_uid

    return str(generate_uid(prefix=None, entropy_srcs=["gai-model", info.name, info.version]))


def _uses_private_scheme(ds: Dataset) -> bool:
    found = False

    def visit(dataset: Dataset, _element: Any) -> None:
        nonlocal found
        if _element.keyword == "CodingSchemeDesignator" and _element.value == C.GAI_SCHEME:
            found = True

    ds.walk(visit)
    return found


def _declare_private_scheme(ds: Dataset) -> None:
    """SOP Common: name the private coding scheme the report uses (PS3.3 C.12.1.1.6)."""
    from pydicom import Dataset as PydicomDataset

    item = PydicomDataset()
    item.CodingSchemeDesignator = C.GAI_SCHEME
    item.CodingSchemeName = C.GAI_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = "gai-research"
    existing = list(ds.get("CodingSchemeIdentificationSequence", []))
    ds.CodingSchemeIdentificationSequence = [*existing, item]
