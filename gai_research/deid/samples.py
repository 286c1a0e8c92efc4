"""Small synthetic datasets with planted Korean identifiers, for tests, docs and the benchmark.

Everything here is made up: names, resident registration numbers (valid in form,
not issued to anyone), phone numbers and addresses. ``planted_bytes`` gives the
byte strings whose presence in an output header counts as a leak.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

__all__ = ["PATIENTS", "SamplePatient", "make_ct_slice", "planted_bytes"]

PRIVATE_CREATOR = "GAI SAMPLE PACS"


@dataclass(frozen=True)
class SamplePatient:
    hospital_id: str
    name: str  # DICOM PN with alphabetic, ideographic (Hanja) and phonetic (Hangul) groups
    rrn: str
    phone: str
    address: str

    @property
    def hangul(self) -> str:
        return self.name.split("=")[2].replace("^", "")

    @property
    def birth_date(self) -> str:
        century = "19" if self.rrn[7] in "1256" else "20"
        return century + self.rrn[:6]

    @property
    def sex(self) -> str:
        return "M" if self.rrn[7] in "1357" else "F"


PATIENTS = (
    SamplePatient("SW0012345", "Hong^Gildong=洪^吉童=홍^길동", "850315-1234567", "010-1234-5678", "경기도 수원시 장안구 수성로 245"),
    SamplePatient("SW0023456", "Kim^Minsu=金^民秀=김^민수", "790102-1456789", "010-9876-5432", "경기도 안성시 중앙로 100"),
    SamplePatient("SW0034567", "Lee^Younghee=李^英姬=이^영희", "920512-2345678", "031-555-1234", "경기도 이천시 경충대로 2742"),
    SamplePatient("SW0045678", "Park^Jiwoo=朴^智友=박^지우", "010304-4234567", "010-2222-3333", "서울특별시 강남구 테헤란로 123"),
    SamplePatient("SW0056789", "Choi^Seojun=崔^瑞俊=최^서준", "660715-1987654", "02-3456-7890", "경기도 수원시 팔달구 효원로 1"),
)  # fmt: skip


def planted_bytes(patient: SamplePatient) -> dict[str, list[bytes]]:
    """The byte strings of a sample patient's identifiers, by kind, as they may appear in a file."""
    alphabetic, ideographic, _ = patient.name.split("=")
    given = alphabetic.split("^")[1]
    street = patient.address.split()[-2]
    return {
        "hospital_id": [patient.hospital_id.encode()],
        "rrn": [patient.rrn.encode(), patient.rrn.replace("-", "").encode()],
        "name": [
            patient.hangul.encode("euc_kr"),
            patient.hangul.encode("utf-8"),
            ideographic.replace("^", "").encode("utf-8"),
            given.encode(),
            given.upper().encode(),
        ],
        "phone": [patient.phone.encode()],
        "address": [street.encode("euc_kr"), street.encode("utf-8")],
    }


def make_ct_slice(
    patient: SamplePatient,
    number: int,
    *,
    size: int = 512,
    study_key: str = "study",
    site_key: str = "SUWON",
    pixels: np.ndarray | None = None,
) -> Dataset:
    """One CT slice (16-bit) of a sample patient, with identifiers in the usual and unusual places.

    Identifiers sit in the patient module, in OtherPatientIDsSequence (RRN), in
    free text (comments with name, RRN and phone), in a nested sequence and in a
    private block. UIDs are derived from the patient, ``study_key`` and ``number``,
    so slices of one series share study, series and frame of reference.
    """
    seed = f"{site_key}-{patient.hospital_id}-{study_key}"
    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 149"]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[seed, "sop", str(number)])
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20250310"
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101500"
    ds.AccessionNumber = "AC" + hashlib.sha256(seed.encode()).hexdigest()[:12].upper()
    ds.Modality = "CT"
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "SOMATOM go.Top"
    ds.InstitutionName = "경기도의료원 수원병원"
    ds.InstitutionAddress = "경기도 수원시 장안구 수성로 245"
    ds.ReferringPhysicianName = "Park^Sangjin=朴^相鎭=박^상진"
    ds.StationName = "SWCT01"
    ds.StudyDescription = "CT CHEST LOW DOSE"
    ds.SeriesDescription = "LUNG 1.0 Br60"
    ds.OperatorsName = "Kim^Youngae=金^英愛=김^영애"
    ds.PatientName = patient.name
    ds.PatientID = patient.hospital_id
    ds.IssuerOfPatientID = f"GPMC-{site_key}"
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    other = Dataset()
    other.PatientID = patient.rrn
    other.IssuerOfPatientID = "KR-RRN"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [other]
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.phone
    ds.PatientComments = (
        f"환자 {patient.hangul} 주민번호 {patient.rrn.replace('-', '')} 연락처 {patient.phone}"
    )
    ds.ImageComments = f"{patient.hangul} {patient.rrn} CT CHEST LOW DOSE"
    ds.AdditionalPatientHistory = "폐결절 추적검사"
    phantom = Dataset()
    phantom.CodeValue = "113691"
    phantom.CodingSchemeDesignator = "DCM"
    phantom.CodeMeaning = "IEC Body Dosimetry Phantom"
    ds.CTDIPhantomTypeCodeSequence = [phantom]
    block = ds.private_block(0x0029, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", patient.name.split("=")[0])
    block.add_new(0x02, "LO", patient.rrn)
    block.add_new(0x03, "SH", patient.hospital_id)
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[seed, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[seed, "series"])
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.InstanceNumber = number + 1
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[seed, "frame"])
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [-250.0, -250.0, float(-number)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = float(-number)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.PixelSpacing = [0.7, 0.7]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.BurnedInAnnotation = "NO"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    if pixels is None:
        pixels = np.zeros((size, size), dtype=np.int16)
    ds.PixelData = pixels.astype(np.int16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds
