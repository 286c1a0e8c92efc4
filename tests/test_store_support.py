"""Builders of small pseudonymized-looking datasets for the store tests (no tests here).

They look like deid output: PatientIdentityRemoved YES, a patient pseudonym in
PatientID/PatientName, ``2.25.<int>`` UIDs, shifted dates, PatientAge kept. Pixel
data is a few bytes, so files stay tiny.
"""

from __future__ import annotations

import hashlib

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
MG_IMAGE = "1.2.840.10008.5.1.4.1.1.1.2"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def uid(*parts: object) -> str:
    """A deterministic pseudonymous UID for a test key."""
    return "2.25." + str(int(hashlib.sha256(repr(parts).encode()).hexdigest()[:30], 16))


def base(
    *,
    patient: str = "PSN-0001",
    study: str = "s1",
    series: str = "se1",
    sop: str | int = 0,
    modality: str = "CT",
    sop_class: str = CT_IMAGE,
    study_date: str = "20260315",
    age: str | None = "063Y",
    sex: str = "M",
    manufacturer: str = "SIEMENS",
    marker: str | None = "YES",
    rows: int = 8,
    columns: int = 8,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(patient, study, series, sop)
    ds.StudyInstanceUID = uid(patient, study)
    ds.SeriesInstanceUID = uid(patient, study, series)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient
    ds.PatientName = patient
    ds.PatientSex = sex
    if age is not None:
        ds.PatientAge = age
    if marker is not None:
        ds.PatientIdentityRemoved = marker
        ds.DeidentificationMethod = "gai_research.deid test double"
    ds.StudyDate = study_date
    ds.StudyDescription = "CT CHEST LOW DOSE" if modality == "CT" else f"{modality} STUDY"
    ds.AccessionNumber = "ACC-" + hashlib.sha256(study.encode()).hexdigest()[:8]
    ds.Modality = modality
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = f"{manufacturer} MODEL"
    ds.SeriesDescription = f"{modality} series {series}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = int(sop) + 1 if isinstance(sop, int) else 1
    ds.Rows = rows
    ds.Columns = columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(rows * columns * 2)
    return ds


def ct_slice(index: int, *, thickness: float = 1.25, step: float = 1.25, **kw) -> Dataset:
    ds = base(sop=index, **kw)
    ds.BodyPartExamined = "CHEST"
    ds.FrameOfReferenceUID = uid(kw.get("patient", "PSN-0001"), "for")
    ds.SliceThickness = thickness
    ds.PixelSpacing = [0.7, 0.7]
    ds.ImageOrientationPatient = AXIAL
    ds.ImagePositionPatient = [-180.0, -180.0, -100.0 + index * step]
    return ds


def ct_series(n: int, **kw) -> list[Dataset]:
    return [ct_slice(i, **kw) for i in range(n)]


def mg_image(laterality: str, view: str, **kw) -> Dataset:
    kw.setdefault("modality", "MG")
    kw.setdefault("sop_class", MG_IMAGE)
    kw.setdefault("sex", "F")
    kw.setdefault("manufacturer", "HOLOGIC")
    ds = base(**kw)
    ds.ImageLaterality = laterality
    ds.ViewPosition = view
    ds.ImagerPixelSpacing = [0.07, 0.07]
    ds.BodyPartExamined = "BREAST"
    return ds


def enhanced_mr(frames: int, **kw) -> Dataset:
    kw.setdefault("modality", "MR")
    kw.setdefault("sop_class", ENHANCED_MR)
    kw.setdefault("manufacturer", "GE MEDICAL SYSTEMS")
    ds = base(**kw)
    ds.NumberOfFrames = frames
    ds.PixelData = bytes(ds.Rows * ds.Columns * 2 * frames)
    measures = Dataset()
    measures.PixelSpacing = [1.0, 1.0]
    measures.SliceThickness = 1.2
    plane = Dataset()
    plane.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # sagittal
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [plane]
    ds.SharedFunctionalGroupsSequence = [shared]
    return ds
