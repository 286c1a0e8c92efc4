"""The attributes every generated object shares: patient, study, series, equipment, SOP.

They are filled the way a Korean hospital's PACS fills them: Korean names in ISO 2022
IR 149 (or UTF-8 for some patients), hospital MRNs, the RRN in Other Patient IDs and
sometimes in free text, Korean institution and physician names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from gai_research.synth.korean import random_name, random_phone
from gai_research.synth.labels import StudyResult
from gai_research.synth.people import PlannedStudy
from gai_research.synth.seeds import derive_rng, derive_uid
from gai_research.synth.sites import SITE_PROFILES, Equipment, SiteProfile
from gai_research.synth.types import TASK_MODALITY, StudyInfo

__all__ = [
    "SeriesSpec",
    "SeriesWriter",
    "StudyContext",
    "add_pixels",
    "code_item",
    "instance_attributes",
    "instance_path",
    "series_base",
    "study_context",
    "study_result",
]

IMPLEMENTATION_UID = derive_uid(0, "implementation-class")
IMPLEMENTATION_VERSION = "GAI_SYNTH_1"
ISO2022_KOREAN = ["", "ISO 2022 IR 149"]
UTF8 = "ISO_IR 192"

STUDY_DESCRIPTION = {
    "lung_nodule_ct": "CT CHEST LOW DOSE",
    "lung_nodule_dx": "CHEST PA",
    "breast_mg": "MAMMOGRAPHY BILATERAL SCREENING",
    "dementia_mr": "BRAIN MRI 3D T1",
    "stroke_ct": "CT BRAIN NON-CONTRAST",
}
HISTORY = {
    "lung_nodule_ct": ("건강검진 저선량 폐CT", "기침 3주, 흡연력 30갑년", "폐결절 추적검사"),
    "lung_nodule_dx": ("건강검진 흉부촬영", "기침, 가래 2주", "발열 및 호흡곤란"),
    "breast_mg": ("국가암검진 유방촬영", "좌측 유방 멍울 촉지", "유방암 가족력"),
    "dementia_mr": ("기억력 저하 2년", "인지기능 저하, MMSE 22점", "치매안심센터 의뢰"),
    "stroke_ct": ("갑작스러운 두통", "우측 위약 및 언어장애, 발병 2시간", "어지럼증, 구토"),
}


@dataclass(frozen=True)
class StudyContext:
    """Everything a modality writer needs to know about the study it writes."""

    plan: PlannedStudy
    seed: int
    patients: int
    site: SiteProfile
    equipment: Equipment
    study_uid: str
    referring: str
    performing: str
    operator: str
    history: str
    patient_comments: str | None
    image_comments: str | None

    @property
    def modality(self) -> str:
        return TASK_MODALITY[self.plan.task]

    def uid(self, *keys: object) -> str:
        return derive_uid(self.seed, self.patients, *self.plan.key, *keys)

    def rng(self, *keys: object) -> np.random.Generator:
        return derive_rng(self.seed, self.patients, *self.plan.key, *keys)


@dataclass(frozen=True)
class SeriesSpec:
    number: int
    description: str
    body_part: str
    protocol: str
    offset_s: int  # series start, seconds after the study time

    def uid(self, ctx: StudyContext) -> str:
        return ctx.uid("series", self.number)


def study_context(plan: PlannedStudy, seed: int, patients: int) -> StudyContext:
    """Physicians and free text of a study, drawn from the study's own generator."""
    rng = derive_rng(seed, patients, *plan.key, "header")
    doctors = [random_name(rng, "M" if rng.random() < 0.6 else "F").dicom for _ in range(3)]
    history = HISTORY[plan.task][int(rng.integers(len(HISTORY[plan.task])))]
    rrn = plan.person.rrn
    where = int(rng.integers(0, 10))  # where, if anywhere, the RRN leaks into free text
    image_comments = f"본인확인 주민번호 {rrn} 확인" if where in (0, 1) else None
    if where == 2:
        history = f"{history}. 주민번호 {rrn}"
    patient_comments = None
    if where == 3 or rng.random() < 0.25:
        guardian = random_name(rng, "F" if plan.person.sex == "M" else "M")
        patient_comments = f"보호자 {guardian.hangul} 연락처 {random_phone(rng)}"
        if where == 3:
            patient_comments = f"주민등록번호 {rrn}, {patient_comments}"
    profile = SITE_PROFILES[plan.site]
    return StudyContext(
        plan=plan,
        seed=seed,
        patients=patients,
        site=profile,
        equipment=profile.equipment[TASK_MODALITY[plan.task]],
        study_uid=derive_uid(seed, patients, *plan.key, "study"),
        referring=doctors[0],
        performing=doctors[1],
        operator=doctors[2],
        history=history,
        patient_comments=patient_comments,
        image_comments=image_comments,
    )


def _time(base: dt.time, seconds: int) -> str:
    moment = dt.datetime.combine(dt.date(2000, 1, 1), base) + dt.timedelta(seconds=seconds)
    return moment.strftime("%H%M%S")


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """A code sequence item (CodeValue, CodingSchemeDesignator, CodeMeaning)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def series_base(ctx: StudyContext, series: SeriesSpec, sop_class_uid: str) -> Dataset:
    """Patient, study, series, equipment and SOP common attributes shared by a series."""
    plan, person = ctx.plan, ctx.plan.person
    day = f"{plan.study_date:%Y%m%d}"
    ds = Dataset()
    ds.SpecificCharacterSet = UTF8 if plan.utf8 else ISO2022_KOREAN
    ds.SOPClassUID = sop_class_uid
    ds.InstanceCreationDate = day
    ds.InstanceCreationTime = _time(plan.study_time, series.offset_s + 60)
    ds.TimezoneOffsetFromUTC = "+0900"
    # patient
    ds.PatientName = person.name.dicom
    ds.PatientID = plan.mrn
    ds.IssuerOfPatientID = ctx.site.issuer
    ds.TypeOfPatientID = "TEXT"
    ds.PatientBirthDate = f"{person.birth_date:%Y%m%d}"
    ds.PatientSex = person.sex
    other = Dataset()
    other.PatientID = person.rrn
    other.IssuerOfPatientID = "KR-RRN"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientAddress = person.address
    ds.PatientTelephoneNumbers = person.phone
    if ctx.patient_comments:
        ds.PatientComments = ctx.patient_comments
    # study
    ds.StudyInstanceUID = ctx.study_uid
    ds.StudyDate = day
    ds.StudyTime = _time(plan.study_time, 0)
    ds.AccessionNumber = plan.accession
    ds.ReferringPhysicianName = ctx.referring
    ds.StudyID = plan.accession[-6:]
    ds.StudyDescription = STUDY_DESCRIPTION[plan.task]
    ds.PatientAge = f"{plan.age_at_study():03d}Y"
    ds.PatientSize = f"{person.height_m:.2f}"
    ds.PatientWeight = f"{person.weight_kg:.1f}"
    ds.AdditionalPatientHistory = ctx.history
    # series
    ds.Modality = ctx.modality
    ds.SeriesInstanceUID = series.uid(ctx)
    ds.SeriesNumber = series.number
    ds.SeriesDate = day
    ds.SeriesTime = _time(plan.study_time, series.offset_s)
    ds.SeriesDescription = series.description
    ds.ProtocolName = series.protocol
    ds.BodyPartExamined = series.body_part
    ds.PerformingPhysicianName = ctx.performing
    ds.OperatorsName = ctx.operator
    # equipment
    eq = ctx.equipment
    ds.Manufacturer = eq.manufacturer
    ds.InstitutionName = ctx.site.institution
    ds.InstitutionAddress = ctx.site.address
    ds.StationName = eq.station
    ds.InstitutionalDepartmentName = ctx.site.department
    ds.ManufacturerModelName = eq.model
    ds.DeviceSerialNumber = eq.serial
    ds.SoftwareVersions = eq.software
    # image-level defaults
    ds.ContentDate = day
    ds.AcquisitionDate = day
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    if ctx.image_comments:
        ds.ImageComments = ctx.image_comments
    return ds


def projection_detector(
    ds: Dataset,
    ctx: StudyContext,
    *,
    detector_type: str,
    source_to_detector_mm: int,
    pixel_mm: float,
    max_value: int,
    calibration: str,
) -> None:
    """The detector, spacing and presentation attributes that DX and MG images share
    (For Presentation, log intensities, identity LUT, a window over the full range)."""
    spacing = [f"{pixel_mm:.3f}", f"{pixel_mm:.3f}"]
    ds.DistanceSourceToDetector = str(source_to_detector_mm)
    ds.DetectorType = detector_type
    ds.DetectorConfiguration = "AREA"
    ds.DetectorID = f"{ctx.equipment.station}-D1"
    ds.ImagerPixelSpacing = spacing
    ds.PixelSpacing = list(spacing)
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = calibration
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    ds.WindowCenter = max_value // 2 + 1
    ds.WindowWidth = max_value + 1
    ds.AcquisitionContextSequence = Sequence()


def instance_attributes(
    ctx: StudyContext, series: SeriesSpec, number: int, seconds: int = 0
) -> Dataset:
    """What differs between the instances of a series: UID, number and times."""
    ds = Dataset()
    ds.SOPInstanceUID = ctx.uid("series", series.number, "instance", number)
    ds.InstanceNumber = number
    when = _time(ctx.plan.study_time, series.offset_s + seconds)
    ds.ContentTime = when
    ds.AcquisitionTime = when
    return ds


def add_pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int, signed: bool = False) -> None:
    """Image Pixel module for a single-sample 16-bit monochrome frame."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(v) for v in pixels.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    dtype = "<i2" if signed else "<u2"
    ds.add_new(0x7FE00010, "OW", np.ascontiguousarray(pixels, dtype=dtype).tobytes())


def instance_path(root: Path, ctx: StudyContext, series: SeriesSpec, number: int) -> Path:
    """``ROOT/<SITE>/<StudyInstanceUID>/<SeriesNumber>/<InstanceNumber:04d>.dcm``."""
    return root / ctx.plan.site / ctx.study_uid / str(series.number) / f"{number:04d}.dcm"


def _encode(elem: DataElement, encodings: str | list[str]) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_data_element(buffer, elem, encodings)
    return buffer.getvalue()


class SeriesWriter:
    """Writes the instances of one series as DICOM files (preamble, file meta, Explicit VR
    Little Endian), encoding the attributes they share only once.

    Each file is the same, byte for byte, as ``Dataset.save_as(path,
    enforce_file_format=True)`` of the shared attributes plus the instance's own; pydicom
    encodes every element, this class only avoids encoding the shared ones again.
    """

    def __init__(self, shared: Dataset) -> None:
        self._sop_class = shared.SOPClassUID
        self._encodings = shared.get("SpecificCharacterSet", default_encoding)
        self._shared = {elem.tag: _encode(elem, self._encodings) for elem in shared}

    def write(self, path: Path, instance: Dataset) -> None:
        """Write the shared attributes together with ``instance``'s (which take precedence)."""
        parts = dict(self._shared)
        parts.update({elem.tag: _encode(elem, self._encodings) for elem in instance})
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = self._sop_class
        meta.MediaStorageSOPInstanceUID = instance.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
        head = DicomBytesIO()
        head.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(head, meta, enforce_standard=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            handle.write(head.getvalue())
            for tag in sorted(parts, key=int):
                handle.write(parts[tag])


def study_result(ctx: StudyContext, n_instances: int, n_series: int = 1) -> StudyResult:
    """The result of a written study, ready for its finding rows."""
    plan = ctx.plan
    info = StudyInfo(
        study_uid=ctx.study_uid,
        site=plan.site,
        patient_id=plan.mrn,
        task=plan.task,
        modality=ctx.modality,
        positive=plan.positive,
        n_series=n_series,
        n_instances=n_instances,
        study_date=f"{plan.study_date:%Y%m%d}",
    )
    return StudyResult(info=info, accession=plan.accession)
