"""The pure function: every rule of issue 3 on small synthetic datasets."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from gai_research.deid import (
    ActionTable,
    QuarantineReason,
    RejectedError,
    load_profile,
    pseudonymize,
)
from gai_research.deid.files import encode_fast
from gai_research.deid.samples import PATIENTS, make_ct_slice, planted_bytes

KEY = b"k" * 64
HONG = PATIENTS[0]


@pytest.fixture(scope="module")
def profile():
    return load_profile()


@pytest.fixture(scope="module")
def table(profile):
    return ActionTable.build(profile)


def run(ds: Dataset, profile=None, site: str = "SUWON", key: bytes = KEY, table=None):
    profile = profile or load_profile()
    return pseudonymize(ds, profile, key, site, table=table)


def encoded(ds: Dataset) -> bytes:
    data = encode_fast(ds)
    if data is None:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        data = buffer.getvalue()
    return data


def profile_with(tmp_path: Path, text: str):
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return load_profile(path)


# --- identifiers ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["hospital_id", "rrn", "name", "phone", "address"])
def test_planted_identifiers_are_gone_from_the_whole_file(profile, table, kind: str) -> None:
    data = encoded(run(make_ct_slice(HONG, 0, size=8), profile, table=table).dataset)
    for value in planted_bytes(HONG)[kind]:
        assert value not in data


def test_patient_module_holds_the_pseudonym(profile, table) -> None:
    result = run(make_ct_slice(HONG, 0, size=8), profile, table=table)
    ds = result.dataset
    assert str(ds.PatientName) == ds.PatientID == result.record.pseudonym
    assert ds.PatientBirthDate == ""
    for keyword in (
        "OtherPatientIDsSequence",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "InstitutionName",
    ):
        assert keyword not in ds
    assert not any(element.tag.is_private for element in ds.iterall())


def test_free_text_is_cleaned_not_dropped(profile, table) -> None:
    ds = run(make_ct_slice(HONG, 0, size=8), profile, table=table).dataset
    assert ds.ImageComments == "CT CHEST LOW DOSE"
    assert ds.StudyDescription == "CT CHEST LOW DOSE"
    assert ds.AdditionalPatientHistory == "폐결절 추적검사"
    assert ds.PatientComments == "환자 주민번호 연락처"


def test_record_keeps_the_originals_for_the_vault(profile, table) -> None:
    record = run(make_ct_slice(HONG, 0, size=8), profile, table=table).record
    assert record.identity.patient_id == HONG.hospital_id
    assert record.identity.rrn_masked == "850315-1******"
    assert record.linkage == "rrn"
    assert record.study.pseudo_study_uid.startswith("2.25.")


# --- keyed and deterministic ------------------------------------------------------------------
def test_same_input_same_output_and_input_untouched(profile, table) -> None:
    ds = make_ct_slice(HONG, 3, size=8)
    before = copy.deepcopy(ds)
    first = encoded(run(ds, profile, table=table).dataset)
    second = encoded(run(ds, profile, table=table).dataset)
    assert first == second
    assert ds == before


def test_another_key_gives_unrelated_pseudonyms(profile, table) -> None:
    one = run(make_ct_slice(HONG, 0, size=8), profile, table=table)
    two = run(make_ct_slice(HONG, 0, size=8), profile, key=b"z" * 64, table=table)
    assert one.record.pseudonym != two.record.pseudonym
    assert one.dataset.StudyInstanceUID != two.dataset.StudyInstanceUID
    assert one.record.date_shift_days != 0 and two.record.date_shift_days != 0


def test_uids_map_consistently_and_meta_matches(profile, table) -> None:
    a = run(make_ct_slice(HONG, 0, size=8), profile, table=table).dataset
    b = run(make_ct_slice(HONG, 1, size=8), profile, table=table).dataset
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert a[keyword].value == b[keyword].value
        assert a[keyword].value.startswith("2.25.")
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.file_meta.MediaStorageSOPClassUID == a.SOPClassUID
    assert a.CTDIPhantomTypeCodeSequence[0].CodeValue == "113691"


def test_preamble_is_zeroed(profile, table) -> None:
    ds = make_ct_slice(HONG, 0, size=8)
    ds.preamble = b"\x01" * 128
    data = encoded(run(ds, profile, table=table).dataset)
    assert data[:128] == b"\0" * 128 and data[128:132] == b"DICM"


def test_markers_are_set(profile, table) -> None:
    ds = run(make_ct_slice(HONG, 0, size=8), profile, table=table).dataset
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert ds.DeidentificationMethod
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes[0] == "113100" and "113107" in codes and "113108" in codes
    assert all(
        item.CodingSchemeDesignator == "DCM" for item in ds.DeidentificationMethodCodeSequence
    )


# --- nested sequences -------------------------------------------------------------------------
def _nest(depth: int) -> Dataset:
    item = Dataset()
    item.PersonName = HONG.name
    item.TextValue = f"소견 {HONG.hangul} {HONG.rrn} 결절 6mm"
    item.Date = "20250310"
    item.UID = "1.2.3.4.5.6.7"
    block = item.private_block(0x0011, "NESTED PRIV", create=True)
    block.add_new(0x01, "LO", HONG.rrn)
    if depth > 1:
        item.ContentSequence = [_nest(depth - 1)]
    return item


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_rules_apply_at_every_depth(profile, table, depth: int) -> None:
    ds = make_ct_slice(HONG, 0, size=8)
    ds.AcquisitionContextSequence = [_nest(depth)]
    result = run(ds, profile, table=table)
    item = result.dataset.AcquisitionContextSequence[0]
    for _ in range(depth):
        assert str(item.PersonName) == "REMOVED"
        assert item.TextValue == "소견 결절 6mm"
        assert item.Date != "20250310" and len(item.Date) == 8
        assert item.UID.startswith("2.25.")
        assert not any(element.tag.is_private for element in item)
        item = item.ContentSequence[0] if "ContentSequence" in item else item


# --- SR with references ----------------------------------------------------------------------
def _sr_referencing(image: Dataset) -> Dataset:
    sr = Dataset()
    sr.SpecificCharacterSet = ["", "ISO 2022 IR 149"]
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    sr.SOPInstanceUID = generate_uid(entropy_srcs=["sr"])
    sr.StudyInstanceUID = image.StudyInstanceUID
    sr.SeriesInstanceUID = generate_uid(entropy_srcs=["sr-series"])
    sr.Modality = "SR"
    sr.PatientName, sr.PatientID, sr.PatientBirthDate = (
        image.PatientName,
        image.PatientID,
        image.PatientBirthDate,
    )
    sr.OtherPatientIDsSequence = copy.deepcopy(image.OtherPatientIDsSequence)
    sr.StudyDate, sr.ContentDate = image.StudyDate, image.StudyDate
    sr.VerifyingObserverSequence = [Dataset()]
    sr.VerifyingObserverSequence[0].VerifyingObserverName = "Lee^Doctor"
    sr.VerifyingObserverSequence[0].VerifyingOrganization = "경기도의료원 수원병원"
    sr.VerifyingObserverSequence[0].VerificationDateTime = "20250310120000"
    text = Dataset()
    text.ValueType, text.RelationshipType = "TEXT", "CONTAINS"
    text.TextValue = f"{HONG.hangul} 환자, 우상엽 결절. 연락처 {HONG.phone}"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = (
        image.SOPClassUID,
        image.SOPInstanceUID,
    )
    img = Dataset()
    img.ValueType, img.RelationshipType = "IMAGE", "CONTAINS"
    img.ReferencedSOPSequence = [ref]
    sr.ContentSequence = [text, img]
    series = Dataset()
    series.SeriesInstanceUID = image.SeriesInstanceUID
    series.ReferencedSOPSequence = [copy.deepcopy(ref)]
    evidence = Dataset()
    evidence.StudyInstanceUID = image.StudyInstanceUID
    evidence.ReferencedSeriesSequence = [series]
    sr.CurrentRequestedProcedureEvidenceSequence = [evidence]
    sr.file_meta = FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return sr


def test_sr_references_follow_the_remapped_image(profile, table) -> None:
    image = make_ct_slice(HONG, 0, size=8)
    sr = run(_sr_referencing(image), profile, table=table).dataset
    new_image = run(image, profile, table=table).dataset
    content_ref = sr.ContentSequence[1].ReferencedSOPSequence[0]
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert content_ref.ReferencedSOPInstanceUID == new_image.SOPInstanceUID
    assert content_ref.ReferencedSOPClassUID == new_image.SOPClassUID
    assert evidence.StudyInstanceUID == new_image.StudyInstanceUID == sr.StudyInstanceUID
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == new_image.SeriesInstanceUID
    assert evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[
        0
    ].ReferencedSOPInstanceUID == (new_image.SOPInstanceUID)
    assert sr.ContentSequence[0].TextValue == "환자, 우상엽 결절. 연락처"
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "REMOVED"
    assert sr.PatientID == new_image.PatientID


# --- one person, one pseudonym across hospitals -----------------------------------------------
def _at(site: str, hospital_id: str, rrn: str | None) -> Dataset:
    ds = make_ct_slice(HONG, 0, size=8, site_key=site)
    ds.PatientID = hospital_id
    if rrn is None:
        del ds.OtherPatientIDsSequence
    else:
        ds.OtherPatientIDsSequence[0].PatientID = rrn
    return ds


def test_two_sites_share_one_patient_through_the_rrn(profile, table) -> None:
    suwon = run(_at("SUWON", "SW0012345", HONG.rrn), profile, "SUWON", table=table).record
    icheon = run(
        _at("ICHEON", "IC-777", HONG.rrn.replace("-", "")), profile, "ICHEON", table=table
    ).record
    assert suwon.pseudonym == icheon.pseudonym
    assert suwon.date_shift_days == icheon.date_shift_days
    assert suwon.linkage == icheon.linkage == "rrn"


def test_without_rrn_site_and_hospital_id_key_the_pseudonym(profile, table) -> None:
    suwon = run(_at("SUWON", "12345", None), profile, "SUWON", table=table).record
    icheon = run(_at("ICHEON", "12345", None), profile, "ICHEON", table=table).record
    again = run(_at("SUWON", "12345", None), profile, "SUWON", table=table).record
    assert suwon.pseudonym != icheon.pseudonym
    assert suwon.pseudonym == again.pseudonym
    assert suwon.linkage == "site_id"


def test_cross_site_linkage_can_be_turned_off(tmp_path: Path) -> None:
    profile = profile_with(tmp_path, "[linkage]\ncross_site = false\n")
    suwon = run(_at("SUWON", "SW0012345", HONG.rrn), profile, "SUWON").record
    icheon = run(_at("ICHEON", "IC-777", HONG.rrn), profile, "ICHEON").record
    assert suwon.pseudonym != icheon.pseudonym
    assert suwon.identity.rrn_masked  # still found (and removed), just not used as key


# --- dates --------------------------------------------------------------------------------------
def test_intervals_between_studies_survive(profile, table) -> None:
    first = make_ct_slice(HONG, 0, size=8, study_key="first")
    second = make_ct_slice(HONG, 0, size=8, study_key="second")
    second.StudyDate = second.SeriesDate = second.AcquisitionDate = second.ContentDate = "20250612"
    a, b = run(first, profile, table=table), run(second, profile, table=table)
    gap = pydicom.valuerep.DA("20250612") - pydicom.valuerep.DA("20250310")
    assert (
        pydicom.valuerep.DA(b.dataset.StudyDate) - pydicom.valuerep.DA(a.dataset.StudyDate) == gap
    )
    assert a.dataset.StudyDate != "20250310"
    assert a.dataset.StudyTime == "101500"


def test_patient_age_is_computed_before_the_dates_move(profile, table) -> None:
    ds = make_ct_slice(HONG, 0, size=8)
    assert "PatientAge" not in ds
    assert run(ds, profile, table=table).dataset.PatientAge == "039Y"


# --- ISO 2022 IR 149 and pydicom's Korean files -------------------------------------------------
def test_korean_charset_file_is_cleaned(profile, table) -> None:
    ds = pydicom.dcmread(pydicom.data.get_charset_files("chrKoreanMulti.dcm")[0], force=True)
    result = run(ds, profile, table=table)
    out = pydicom.dcmread(io.BytesIO(encoded(result.dataset)))
    texts = [str(e.value) for e in out.iterall() if e.VR in ("PN", "LO", "LT", "SH", "ST", "UT")]
    assert not any("김희중" in text or "희중" in text for text in texts)
    assert out.SpecificCharacterSet == ["", "ISO 2022 IR 149"]
    assert result.record.identity.patient_name == "김희중"


def test_iso_2022_ir_149_text_is_written_back_in_the_same_charset(profile, table) -> None:
    ds = make_ct_slice(HONG, 0, size=8)
    ds.SeriesDescription = f"흉부 {HONG.hangul} 저선량"
    out = pydicom.dcmread(io.BytesIO(encoded(run(ds, profile, table=table).dataset)))
    assert out.SeriesDescription == "흉부 저선량"


# --- burned-in text -------------------------------------------------------------------------------
def _image(
    modality: str, flag: str | None, image_type: str = "ORIGINAL", sop_class: str | None = None
) -> Dataset:
    ds = make_ct_slice(HONG, 0, size=8)
    ds.Modality = modality
    ds.ImageType = [image_type, "PRIMARY"]
    if sop_class:
        ds.SOPClassUID = sop_class
    if flag is None:
        del ds.BurnedInAnnotation
    else:
        ds.BurnedInAnnotation = flag
    return ds


@pytest.mark.parametrize(
    "modality, flag, image_type, sop_class, rejected",
    [
        ("US", None, "ORIGINAL", None, True),
        ("US", "NO", "ORIGINAL", None, False),
        ("OT", None, "ORIGINAL", None, True),
        ("CT", "YES", "ORIGINAL", None, True),
        ("CT", None, "ORIGINAL", None, False),
        ("DX", None, "SECONDARY", None, True),
        ("DX", None, "ORIGINAL", None, False),
        ("CT", None, "ORIGINAL", "1.2.840.10008.5.1.4.1.1.7", True),  # secondary capture
    ],
)
def test_burned_in_rules(
    profile, table, modality, flag, image_type, sop_class, rejected: bool
) -> None:
    ds = _image(modality, flag, image_type, sop_class)
    if rejected:
        with pytest.raises(RejectedError) as caught:
            run(ds, profile, table=table)
        assert caught.value.reason is QuarantineReason.BURNED_IN_TEXT
        assert HONG.hangul not in str(caught.value) and HONG.hospital_id not in str(caught.value)
    else:
        run(ds, profile, table=table)


def test_a_pixel_rule_masks_the_text_and_lets_the_image_pass(tmp_path: Path) -> None:
    profile = profile_with(
        tmp_path,
        '[[pixel_rules]]\nname = "ACME header"\nmanufacturer = "ACME"\nmodel = "Sono.*"\n'
        "rows = 8\ncolumns = 8\nregions = [[0, 0, 8, 2]]\n",
    )
    ds = _image("US", None)
    ds.Manufacturer, ds.ManufacturerModelName = "ACME Medical", "Sono 5000"
    ds.PixelData = (np.arange(64, dtype=np.int16).reshape(8, 8) + 100).tobytes()
    result = run(ds, profile)
    pixels = result.dataset.pixel_array
    assert (pixels[:2] == 100).all() and pixels[2:].min() > 100
    assert result.dataset.BurnedInAnnotation == "NO"
    assert result.record.pixels_cleaned
    assert "113101" in [
        item.CodeValue for item in result.dataset.DeidentificationMethodCodeSequence
    ]


def test_no_rule_when_clean_pixel_data_is_off(tmp_path: Path) -> None:
    profile = profile_with(
        tmp_path,
        "[options]\nclean_pixel_data = false\n"
        '[[pixel_rules]]\nname = "ACME"\nmanufacturer = "ACME"\nregions = [[0, 0, 8, 2]]\n',
    )
    ds = _image("US", None)
    ds.Manufacturer = "ACME"
    with pytest.raises(RejectedError, match="no pixel rule"):
        run(ds, profile)


def test_encapsulated_documents_are_rejected(profile, table) -> None:
    ds = _image("DOC", None, sop_class="1.2.840.10008.5.1.4.1.1.104.1")
    del ds.PixelData
    ds.EncapsulatedDocument = b"%PDF-1.4 " + HONG.name.encode()
    with pytest.raises(RejectedError) as caught:
        run(ds, profile, table=table)
    assert caught.value.reason is QuarantineReason.ENCAPSULATED_DOCUMENT


# --- private tags and the last check --------------------------------------------------------------
def test_safe_private_elements_are_kept_only_when_listed(tmp_path: Path) -> None:
    profile = profile_with(
        tmp_path,
        "[options]\nretain_safe_private = true\n"
        '[[safe_private]]\ncreator = "GAI SAMPLE PACS"\ngroup = 0x0029\nelement = 0x10\n',
    )
    ds = make_ct_slice(HONG, 0, size=8)
    ds.private_block(0x0029, "GAI SAMPLE PACS").add_new(0x10, "DS", "1.5")
    out = run(ds, profile).dataset
    block = out.private_block(0x0029, "GAI SAMPLE PACS")
    assert block[0x10].value == "1.5"
    assert 0x00291001 not in out and 0x00291002 not in out  # name and RRN: not listed, removed


def test_a_listed_safe_private_element_holding_an_identifier_is_not_written(tmp_path: Path) -> None:
    profile = profile_with(
        tmp_path,
        "[options]\nretain_safe_private = true\n"
        '[[safe_private]]\ncreator = "GAI SAMPLE PACS"\ngroup = 0x0029\nelement = 0x02\n',
    )
    with pytest.raises(RejectedError) as caught:
        run(make_ct_slice(HONG, 0, size=8), profile)
    assert caught.value.reason is QuarantineReason.INVALID_OUTPUT
    assert HONG.rrn not in str(caught.value)


def test_kept_text_that_still_names_the_patient_is_not_written(tmp_path: Path) -> None:
    profile = profile_with(tmp_path, "[options]\nretain_device_identity = true\n")
    ds = make_ct_slice(HONG, 0, size=8)
    ds.StationName = HONG.hangul  # kept by Retain Device Identity, but it is the patient's name
    with pytest.raises(RejectedError) as caught:
        run(ds, profile)
    assert caught.value.reason is QuarantineReason.INVALID_OUTPUT
    assert "StationName" in str(caught.value) and HONG.hangul not in str(caught.value)


# --- encodings ------------------------------------------------------------------------------------
def test_implicit_vr_input_is_written_in_its_own_syntax(profile, table) -> None:
    ds = make_ct_slice(HONG, 0, size=8)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    read = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    result = run(read, profile, table=table)
    assert encode_fast(result.dataset) is None  # not the fast path
    out = pydicom.dcmread(io.BytesIO(encoded(result.dataset)))
    assert out.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert out.PatientID == result.record.pseudonym
    assert out.ImageComments == "CT CHEST LOW DOSE"


def test_fast_encoding_equals_pydicom(profile, table) -> None:
    buffer = io.BytesIO()
    make_ct_slice(HONG, 0, size=8).save_as(buffer, enforce_file_format=True)
    result = run(pydicom.dcmread(io.BytesIO(buffer.getvalue())), profile, table=table)
    buffer = io.BytesIO()
    result.dataset.save_as(buffer, enforce_file_format=True)
    assert encode_fast(result.dataset) == buffer.getvalue()
