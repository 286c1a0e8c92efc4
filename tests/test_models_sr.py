"""DICOM results both ways: TID 1500 SR written and read back, vendors' SR / SEG / KOS read.

The source images come from a one-patient synthetic cohort (CT chest, mammography,
head CT); the SRs are validated with dciodvfy; a vendor's report is built with plain
highdicom using other code choices than ours, and broken reports must be refused with
their reason.
"""

from __future__ import annotations

import copy
import subprocess
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest

from gai_research.models import sr_codes
from gai_research.models.errors import MalformedResultError, ModelInputError
from gai_research.models.sr import (
    merge_predictions,
    read_kos,
    read_result,
    read_seg,
    read_sr,
    write_sr,
)
from gai_research.models.types import Finding, ModelInfo, Prediction, VolumeMeasurement
from tests.conftest import require_tool

CT_INFO = ModelInfo(
    name="test-lung-ct",
    vendor="gai-research tests",
    version="2.1",
    task="lung_nodule_ct",
    kind="detection",
    origin="baseline",
)
MG_INFO = ModelInfo(
    name="test-mammography",
    vendor="gai-research tests",
    version="0.3",
    task="breast_mg",
    kind="classification",
    origin="simulator",
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[pydicom.Dataset]]:
    """Headers of a synthetic CT chest, MG and head CT study, by task (pixels on request)."""
    from gai_research.synth import generate_cohort

    out = tmp_path_factory.mktemp("sr-synth")
    summary = generate_cohort(out, patients=1, seed=5)
    studies = {}
    for info in summary.studies:
        files = sorted((out / info.site / info.study_uid).rglob("*.dcm")) or sorted(
            p for p in (out / info.site / info.study_uid).rglob("*") if p.is_file()
        )
        studies[info.task] = files
    return studies


def headers(files: list[Path]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in files]


@pytest.fixture(scope="module")
def ct(cohort) -> list[pydicom.Dataset]:
    return headers(cohort["lung_nodule_ct"])


@pytest.fixture(scope="module")
def mg(cohort) -> list[pydicom.Dataset]:
    return headers(cohort["breast_mg"])


def ct_prediction(ct: list[pydicom.Dataset]) -> Prediction:
    series = str(ct[0].SeriesInstanceUID)
    return Prediction(
        study_uid=str(ct[0].StudyInstanceUID),
        score=0.8312,
        scores={"malignancy": 0.41, "a-much-longer-score-name-than-sixteen": 0.2},
        findings=(
            Finding(
                score=0.93,
                x_mm=84.0,
                y_mm=-61.63,
                z_mm=-137.127,
                diameter_mm=26.3,
                label="nodule",
                series_uid=series,
            ),
            Finding(
                score=0.21, x_mm=-57.25, y_mm=49.9, z_mm=-122.7, label="nodule", series_uid=series
            ),
            Finding(
                score=0.05,
                x_mm=1.5,
                y_mm=2.5,
                z_mm=-100.0,
                diameter_mm=4.0,
                label="calcification",
                series_uid=series,
            ),
        ),
        volumes=(
            VolumeMeasurement("hippocampus_l", 3.1234, series),
            VolumeMeasurement("hemorrhage", 0.0, series),
            VolumeMeasurement("Nodule_Total", 12.5, series),
        ),
    )


def mg_prediction(mg: list[pydicom.Dataset]) -> Prediction:
    findings = tuple(
        Finding(
            score=0.4 + 0.1 * i,
            row_px=224.0 + i,
            col_px=259.25,
            diameter_mm=20.8,
            label="mass",
            sop_uid=str(ds.SOPInstanceUID),
            series_uid=str(ds.SeriesInstanceUID),
            laterality=str(ds.ImageLaterality),
            view=str(ds.ViewPosition),
        )
        for i, ds in enumerate(mg[:2])
    )
    return Prediction(study_uid=str(mg[0].StudyInstanceUID), score=0.7, findings=findings)


def to_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def assert_same(read: Prediction, written: Prediction, *, tol: float = 1e-3) -> None:
    """Equal up to the float32 of SCOORD coordinates; ``raw`` and ``timing`` are not compared."""
    assert read.study_uid == written.study_uid
    assert read.score == pytest.approx(written.score)
    assert dict(read.scores) == pytest.approx(dict(written.scores))
    assert len(read.findings) == len(written.findings)
    for got, want in zip(read.findings, written.findings, strict=True):
        for key in ("x_mm", "y_mm", "z_mm", "row_px", "col_px"):
            a, b = getattr(got, key), getattr(want, key)
            assert (a is None) == (b is None), key
            if a is not None:
                assert abs(a - b) <= tol, key
        assert replace(got, x_mm=None, y_mm=None, z_mm=None, row_px=None, col_px=None) == replace(
            want, x_mm=None, y_mm=None, z_mm=None, row_px=None, col_px=None
        )
    assert read.volumes == written.volumes


# --- writing and reading back -----------------------------------------------------------------


def test_ct_prediction_round_trips_through_bytes(ct) -> None:
    written = ct_prediction(ct)
    read = read_sr(to_bytes(write_sr(written, CT_INFO, ct)))
    assert_same(read, written)
    assert read.raw["algorithm"] == {
        "name": "test-lung-ct",
        "version": "2.1",
        "device": "test-lung-ct",
    }
    assert read.raw["score_from"] == "measurement"


def test_mg_prediction_round_trips_with_pixel_points(mg) -> None:
    written = mg_prediction(mg)
    read = read_sr(to_bytes(write_sr(written, MG_INFO, mg)), sources=mg)
    assert_same(read, written, tol=0.0)
    assert replace(read, raw=None) == written


def test_mg_laterality_is_kept_without_sources_and_view_needs_them(mg) -> None:
    read = read_sr(write_sr(mg_prediction(mg), MG_INFO, mg))
    assert [f.laterality for f in read.findings] == [str(ds.ImageLaterality) for ds in mg[:2]]
    assert {f.view for f in read.findings} == {None}


def test_sr_keeps_patient_and_study_in_a_new_series_with_the_sources_as_evidence(ct) -> None:
    sr = write_sr(
        ct_prediction(ct),
        CT_INFO,
        ct,
        series_number=905,
        manufacturer="Lab",
        series_instance_uid="2.25.1234",
        sop_instance_uid="2.25.5678",
    )
    first = ct[0]
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber", "StudyDate"):
        assert str(sr[keyword].value) == str(first[keyword].value), keyword
    assert (sr.SeriesInstanceUID, sr.SOPInstanceUID) == ("2.25.1234", "2.25.5678")
    assert sr.file_meta.MediaStorageSOPInstanceUID == "2.25.5678"
    assert write_sr(ct_prediction(ct), CT_INFO, ct).SeriesInstanceUID not in {
        str(ds.SeriesInstanceUID) for ds in ct
    }
    assert (sr.SeriesNumber, sr.Manufacturer, sr.Modality) == (905, "Lab", "SR")
    assert sr.SeriesDescription == "test-lung-ct 2.1 (baseline AI result)"
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    (evidence,) = sr.CurrentRequestedProcedureEvidenceSequence
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in evidence.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert referenced == {str(ds.SOPInstanceUID) for ds in ct}
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99GAI"


@pytest.mark.parametrize("modality", ["CT", "MG"])
def test_written_sr_has_no_dciodvfy_errors(modality: str, ct, mg, tmp_path: Path) -> None:
    tool = require_tool("dciodvfy")
    if modality == "CT":
        sr = write_sr(ct_prediction(ct), CT_INFO, ct)
    else:
        sr = write_sr(mg_prediction(mg), MG_INFO, mg)
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, errors="replace")
    errors = [
        line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")
    ]
    assert errors == []


def test_empty_prediction_is_still_a_valid_report(ct) -> None:
    empty = Prediction(study_uid=str(ct[0].StudyInstanceUID))
    read = read_sr(to_bytes(write_sr(empty, CT_INFO, ct)))
    assert (read.score, read.findings, read.volumes, dict(read.scores)) == (None, (), (), {})


def test_writer_refuses_a_finding_it_cannot_place(ct, mg) -> None:
    stray = Finding(score=0.5, row_px=1.0, col_px=2.0, sop_uid="2.25.1")
    with pytest.raises(ModelInputError, match="not among the source images"):
        write_sr(Prediction(study_uid=str(mg[0].StudyInstanceUID), findings=(stray,)), MG_INFO, mg)
    with pytest.raises(ModelInputError, match="do not all belong"):
        write_sr(Prediction(study_uid=str(ct[0].StudyInstanceUID)), CT_INFO, [*ct[:2], mg[0]])
    placed = Finding(score=0.5, x_mm=0.0, y_mm=0.0, z_mm=0.0)
    with pytest.raises(ModelInputError, match="frame of reference"):
        write_sr(Prediction(study_uid=str(mg[0].StudyInstanceUID), findings=(placed,)), MG_INFO, mg)


# --- a vendor's report ------------------------------------------------------------------------


def vendor_sr(ct: list[pydicom.Dataset]) -> pydicom.Dataset:
    """A report built the way another product might: other codes, units and geometry."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    code = hd.sr.CodedConcept
    algorithm = hd.sr.AlgorithmIdentification(name="VendorNet", version="7.0.1")
    frame = str(ct[0].FrameOfReferenceUID)
    centre = np.array([10.0, -20.0, -110.0])
    square = centre + np.array([[-5, -5, 0], [5, -5, 0], [5, 5, 0], [-5, 5, 0], [-5, -5, 0]])
    overall = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier="Overall", uid=hd.UID()),
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(
                name=code("122157", "DCM", "Probability"), value=87.0, unit=code("%", "UCUM", "%")
            )
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=code("121071", "DCM", "Finding"), value=code("263654008", "SCT", "Abnormal")
            )
        ],
    )
    lesion = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier="Lesion 1", uid=hd.UID()),
        referenced_region=hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYGON,
            graphic_data=square,
            frame_of_reference_uid=frame,
        ),
        finding_type=code("1386000", "SCT", "Intracranial hemorrhage"),
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(
                name=code("103339001", "SCT", "Long axis"), value=1.5, unit=code("cm", "UCUM", "cm")
            ),
            hd.sr.Measurement(
                name=code("111047", "DCM", "Probability of cancer"),
                value=0.64,
                unit=code("1", "UCUM", "no units"),
            ),
            hd.sr.Measurement(
                name=codes.SCT.Volume, value=2500.0, unit=code("mm3", "UCUM", "cubic millimeter")
            ),
        ],
    )
    image = ct[10]
    circle = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier="Lesion 2", uid=hd.UID()),
        referenced_region=hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.CIRCLE,
            graphic_data=np.array([[100.5, 60.5], [110.5, 60.5]]),
            source_image=hd.sr.SourceImageForRegion(
                referenced_sop_class_uid=str(image.SOPClassUID),
                referenced_sop_instance_uid=str(image.SOPInstanceUID),
            ),
        ),
        measurements=[
            hd.sr.Measurement(name=codes.SCT.Diameter, value=7.0, unit=codes.UCUM.Millimeter)
        ],
    )
    structure = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier="ROI 7", uid=hd.UID()),
        finding_sites=[
            hd.sr.FindingSite(
                anatomic_location=codes.SCT.Hippocampus,
                laterality=code("24028007", "SCT", "Right"),
            )
        ],
        measurements=[
            hd.sr.Measurement(name=codes.SCT.Volume, value=0.0031, unit=code("l", "UCUM", "liter"))
        ],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name="Vendor^Engineer"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[lesion, circle, structure, overall],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=ct,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=77,
        sop_instance_uid=hd.UID(),
        instance_number=3,
        manufacturer="Some Vendor",
        specific_character_set="ISO_IR 192",
    )


def test_vendor_report_with_other_codes_reads(ct) -> None:
    read = read_result(to_bytes(vendor_sr(ct)))
    series = str(ct[0].SeriesInstanceUID)
    assert read.score == pytest.approx(0.87)  # "Probability" in %
    assert read.raw["manufacturer"] == "Some Vendor"
    assert read.raw["algorithm"]["name"] == "VendorNet"
    lesion, circle = read.findings
    assert (lesion.x_mm, lesion.y_mm, lesion.z_mm) == pytest.approx((10.0, -20.0, -110.0))
    assert lesion.diameter_mm == pytest.approx(15.0)  # 1.5 cm
    assert (lesion.score, lesion.label, lesion.series_uid) == (
        pytest.approx(0.64),
        "hemorrhage",
        series,
    )
    assert (circle.row_px, circle.col_px, circle.diameter_mm) == (60.0, 100.0, 7.0)
    assert circle.sop_uid == str(ct[10].SOPInstanceUID) and circle.score == 1.0
    assert read.volumes == (
        VolumeMeasurement("hemorrhage", pytest.approx(2.5), series),
        VolumeMeasurement("hippocampus_r", pytest.approx(3.1), series),
    )


def test_vendor_report_without_study_score_takes_the_best_finding(mg) -> None:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    groups = [
        hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(identifier=f"M{i}", uid=hd.UID()),
            referenced_region=hd.sr.ImageRegion(
                graphic_type=hd.sr.GraphicTypeValues.POINT,
                graphic_data=np.array([[50.5, 40.5]]),
                source_image=hd.sr.SourceImageForRegion(
                    referenced_sop_class_uid=str(ds.SOPClassUID),
                    referenced_sop_instance_uid=str(ds.SOPInstanceUID),
                ),
            ),
            finding_type=codes.SCT.Mass,
            measurements=[
                hd.sr.Measurement(
                    name=codes.DCM.CertaintyOfFinding, value=score, unit=codes.UCUM.NoUnits
                )
            ],
        )
        for i, (ds, score) in enumerate(zip(mg[:2], (0.3, 0.6), strict=True))
    ]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(),
        procedure_reported=codes.LN.MammographyScreeningReport,
        imaging_measurements=groups,
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=mg,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        specific_character_set="ISO_IR 192",
    )
    read = read_sr(to_bytes(sr), sources=mg)
    assert read.score == 0.6 and read.raw["score_from"] == "max-finding"
    assert [(f.label, f.row_px, f.col_px, f.view) for f in read.findings] == [
        ("mass", 40.0, 50.0, str(mg[0].ViewPosition)),
        ("mass", 40.0, 50.0, str(mg[1].ViewPosition)),
    ]


# --- what is refused -------------------------------------------------------------------------


def _items(ds: pydicom.Dataset, value_type: str):
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") == value_type:
            yield item
        yield from _items(item, value_type)


def _break(ct, how: str) -> pydicom.Dataset:
    sr = copy.deepcopy(write_sr(ct_prediction(ct), CT_INFO, ct))
    if how == "scoord3d":
        next(_items(sr, "SCOORD3D")).GraphicData = [1.0, 2.0]
    elif how == "unit":
        volume = next(
            i for i in _items(sr, "NUM") if i.ConceptNameCodeSequence[0].CodeValue == "118565006"
        )
        volume.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue = "[gal_us]"
    elif how == "no-groups":
        next(_items(sr, "CONTAINER")).ContentSequence = []
    return sr


def _text_report(ct) -> pydicom.Dataset:
    from gai_research.models.simulators.dicom_node import _malformed_sr

    return _malformed_sr(ct)


def _kos(ct, title=("113000", "DCM", "Of Interest")) -> pydicom.Dataset:
    import highdicom as hd

    evidence = [copy.copy(ds) for ds in ct[3:5]]
    for ds in evidence:  # highdicom refuses ISO 2022 with an empty first value
        ds.SpecificCharacterSet = "ISO_IR 192"
    content = hd.ko.KeyObjectSelection(
        document_title=hd.sr.CodedConcept(*title), referenced_objects=evidence, description="look"
    )
    return hd.ko.KeyObjectSelectionDocument(
        evidence=evidence,
        content=content,
        series_instance_uid=hd.UID(),
        series_number=50,
        sop_instance_uid=hd.UID(),
        instance_number=1,
    )


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("text-report", "no 'Imaging Measurements' container"),
        ("image", "not a structured report"),
        ("kos", "key object selection, not a measurement report"),
        ("garbage", "not a readable DICOM object"),
        ("scoord3d", "not x/y/z triplets"),
        ("unit", "unit '[gal_us]'"),
        ("no-groups", "no measurement groups"),
    ],
)
def test_unusable_reports_are_refused_with_their_reason(case: str, reason: str, ct) -> None:
    if case == "text-report":
        obj = to_bytes(_text_report(ct))
    elif case == "image":
        obj = ct[0]
    elif case == "kos":
        obj = _kos(ct)
    elif case == "garbage":
        obj = b"\x00" * 10
    else:
        obj = _break(ct, case)
    with pytest.raises(MalformedResultError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        read_sr(obj)


# --- SEG and KOS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ct_pixels(cohort) -> list[pydicom.Dataset]:
    images = [pydicom.dcmread(p) for p in cohort["stroke_ct"][:6]]
    for ds in images:  # highdicom refuses ISO 2022 with an empty first value
        ds.SpecificCharacterSet = "ISO_IR 192"
    return images


@pytest.mark.parametrize("kind", ["BINARY", "FRACTIONAL"])
def test_seg_segments_become_volumes_and_masks(kind: str, ct_pixels) -> None:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    rows, cols = int(ct_pixels[0].Rows), int(ct_pixels[0].Columns)
    labels = np.zeros((len(ct_pixels), rows, cols), dtype=np.uint8)
    labels[1:4, 10:20, 30:45] = 1  # 3 x 10 x 15 voxels of hemorrhage
    labels[2:5, 50:54, 60:62] = 2  # 3 x 4 x 2 voxels of left hippocampus
    algorithm = hd.AlgorithmIdentificationSequence(
        name="VendorSeg", family=codes.cid7162.ArtificialIntelligence, version="1"
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=1,
            segment_label="Bleed",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Hemorrhage,
            algorithm_type="AUTOMATIC",
            algorithm_identification=algorithm,
        ),
        hd.seg.SegmentDescription(
            segment_number=2,
            segment_label="Left hippocampus",
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=codes.SCT.Hippocampus,
            algorithm_type="AUTOMATIC",
            algorithm_identification=algorithm,
        ),
    ]
    pixel_array = np.stack([labels == 1, labels == 2], axis=-1)
    if kind == "FRACTIONAL":
        pixel_array = pixel_array.astype(np.float32)
    seg = hd.seg.Segmentation(
        source_images=ct_pixels,
        pixel_array=pixel_array,
        segmentation_type=kind,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=60,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Some Vendor",
        manufacturer_model_name="VendorSeg",
        software_versions="1",
        device_serial_number="1",
    )
    modifier = pydicom.Dataset()
    modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning = (
        "7771000",
        "SCT",
        "Left",
    )
    seg.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[
        0
    ].SegmentedPropertyTypeModifierCodeSequence = [modifier]
    reading = read_seg(to_bytes(seg))
    measures = ct_pixels[0]
    voxel_ml = (
        float(np.prod([float(v) for v in measures.PixelSpacing]))
        * float(measures.SliceThickness)
        / 1000
    )
    series = str(measures.SeriesInstanceUID)
    assert reading.voxel_volume_ml == pytest.approx(voxel_ml)
    assert reading.prediction.volumes == (
        VolumeMeasurement("hemorrhage", pytest.approx(450 * voxel_ml), series),
        VolumeMeasurement("hippocampus_l", pytest.approx(24 * voxel_ml), series),
    )
    assert [(m.name, m.series_uid) for m in reading.prediction.masks] == [
        ("hemorrhage", series),
        ("hippocampus_l", series),
    ]
    assert float(np.asarray(reading.arrays["hemorrhage"]).sum()) == pytest.approx(450)
    # a SEG's volume does not replace the SR's measurement of the same structure
    sr = Prediction(
        study_uid=reading.prediction.study_uid,
        score=0.9,
        volumes=(VolumeMeasurement("hemorrhage", 5.0),),
    )
    sr = replace(sr, raw={"format": "dicom-sr"})
    merged = merge_predictions(sr.study_uid, [reading.prediction, sr])
    assert merged.score == 0.9
    assert [(v.name, v.volume_ml) for v in merged.volumes] == [
        ("hemorrhage", 5.0),
        ("hippocampus_l", pytest.approx(24 * voxel_ml)),
    ]
    assert len(merged.masks) == 2 and len(merged.raw["objects"]) == 2


def test_kos_flags_images_as_findings(ct) -> None:
    read = read_kos(to_bytes(_kos(ct)))
    assert read.score == 1.0
    assert [(f.sop_uid, f.series_uid, f.label) for f in read.findings] == [
        (str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID), "of interest") for ds in ct[3:5]
    ]
    assert read_result(_kos(ct)).findings == read.findings


def test_kos_rejection_note_is_not_a_result(ct) -> None:
    with pytest.raises(MalformedResultError, match="rejection note"):
        read_kos(_kos(ct, ("113001", "DCM", "Rejected for Quality Reasons")))


@pytest.mark.parametrize(
    ("name", "site", "side"),
    [
        ("hippocampus_l", "5366008", "7771000"),
        ("brain", "12738006", None),
        ("Hippocampus_L", None, None),
        ("hippocampus_left", None, None),
    ],
)
def test_volume_sites_only_for_names_that_read_back_the_same(
    name: str, site: str | None, side: str | None
) -> None:
    found = sr_codes.volume_site(name)
    if site is None:
        assert found is None
        return
    location, laterality = found
    assert (location[1], laterality[1] if laterality else None) == (site, side)
    assert (
        sr_codes.volume_name_from_site(location, laterality[2][0] if laterality else None) == name
    )
