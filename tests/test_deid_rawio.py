"""The fast paths behind ``gai deid``'s speed give exactly what pydicom gives.

Reading (:func:`read_explicit_le`), sequence decoding (:func:`decode_sequence`),
text decoding and encoding (:mod:`gai_research.deid.elements`) and writing
(:func:`encode_parts`) are each compared with pydicom's own result, file by file,
over the files pydicom ships; the runner's folder listing with ``os.walk``'s.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import Counter
from multiprocessing import get_all_start_methods
from pathlib import Path

import pydicom
import pytest
from pydicom.charset import convert_encodings, decode_bytes, encode_string, python_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian
from pydicom.valuerep import TEXT_VR_DELIMS, PersonName

from gai_research.deid import ActionTable, RejectedError, load_profile, pseudonymize, rawio
from gai_research.deid import files as deid_files
from gai_research.deid.elements import encode_value, peek, store, text_values, values_of
from gai_research.deid.files import encode_fast, read_dataset, write_dataset
from gai_research.deid.runner import _chunk_size, list_inputs
from gai_research.deid.samples import PATIENTS, make_ct_slice
from gai_research.deid.text import TextScrubber

KEY = b"r" * 64
HONG = PATIENTS[0]


def _pydicom_files() -> list[Path]:
    import pydicom.data

    root = Path(pydicom.data.__file__).parent
    files = [p for folder in ("test_files", "charset_files") for p in list_inputs(root / folder)]
    return sorted(p for p in files if p.suffix.lower() == ".dcm" or "." not in p.name)


FILES = _pydicom_files()


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


@pytest.fixture(scope="module")
def profile():
    return load_profile()


@pytest.fixture(scope="module")
def table(profile):
    return ActionTable.build(profile)


def _dcmread(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


def _same_element(a: object, b: object) -> None:
    assert type(a) is type(b)
    if isinstance(a, RawDataElement):
        assert tuple(a) == tuple(b)
        assert type(a.tag) is type(b.tag)
    else:
        assert (a.tag, a.VR, a.value) == (b.tag, b.VR, b.value)


def _same_dataset(a: Dataset, b: Dataset) -> None:
    assert list(a._dict) == list(b._dict)
    assert [type(tag) for tag in a._dict] == [type(tag) for tag in b._dict]
    for tag in a._dict:
        _same_element(a._dict[tag], b._dict[tag])


def _assert_read_like_pydicom(path: Path) -> bool:
    """True if the fast reader took the file (and then gave dcmread's dataset)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = rawio.read_explicit_le(path)
        if fast is None:
            return False
        slow = pydicom.dcmread(path)
    assert fast.preamble == slow.preamble
    _same_dataset(fast.file_meta, slow.file_meta)
    _same_dataset(fast, slow)
    assert fast.original_encoding == slow.original_encoding
    assert fast.original_character_set == slow.original_character_set
    assert fast._character_set == slow._character_set
    assert (fast.filename, fast.fileobj_type, fast.timestamp) == (
        slow.filename,
        slow.fileobj_type,
        slow.timestamp,
    )
    return True


# --- reading -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_fast_read_gives_dcmreads_dataset(path: Path) -> None:
    _assert_read_like_pydicom(path)


def test_fast_read_takes_most_explicit_little_endian_files() -> None:
    taken = sum(_assert_read_like_pydicom(path) for path in FILES)
    assert taken > 100


@pytest.mark.parametrize(("head", "big"), [(13, 16), (64, 100), (1000, 16)])
def test_fast_read_across_window_edges(monkeypatch, head: int, big: int) -> None:
    """Headers cut anywhere by the read window, big values read on their own: the same dataset."""
    monkeypatch.setattr(rawio, "_HEAD", head)
    monkeypatch.setattr(rawio, "_BIG", big)
    assert sum(_assert_read_like_pydicom(path) for path in FILES[::3]) > 30


def _saved(ds: Dataset, tmp_path: Path, name: str = "x.dcm") -> Path:
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_other_transfer_syntaxes_are_left_to_pydicom(tmp_path: Path, syntax: str) -> None:
    ds = make_ct_slice(HONG, 0, size=8)
    ds.file_meta.TransferSyntaxUID = syntax
    assert rawio.read_explicit_le(_saved(ds, tmp_path)) is None


def test_files_without_prefix_or_cut_short_are_left_to_pydicom(tmp_path: Path) -> None:
    data = _saved(make_ct_slice(HONG, 0, size=8), tmp_path).read_bytes()
    (tmp_path / "raw.dcm").write_bytes(data[132:])  # no preamble, no DICM
    (tmp_path / "cut.dcm").write_bytes(data[:-10])
    assert rawio.read_explicit_le(tmp_path / "raw.dcm") is None
    assert rawio.read_explicit_le(tmp_path / "cut.dcm") is None
    with pytest.raises(RejectedError) as caught:
        read_dataset(tmp_path / "cut.dcm")
    assert caught.value.reason.value == "truncated"


def test_undefined_length_sequences_are_left_to_pydicom(tmp_path: Path) -> None:
    ds = make_ct_slice(HONG, 0, size=8)
    ds["OtherPatientIDsSequence"].is_undefined_length = True
    assert rawio.read_explicit_le(_saved(ds, tmp_path)) is None
    assert read_dataset(tmp_path / "x.dcm").PatientID == HONG.hospital_id


# --- sequences -----------------------------------------------------------------------------
def _raw_sequences(ds: Dataset):
    for element in list(ds._dict.values()):
        if isinstance(element, RawDataElement) and element.VR == "SQ":
            reference = convert_raw_data_element(element, encoding=ds._character_set, ds=ds)
            yield element, ds._character_set, reference
            for item in reference.value or ():
                yield from _raw_sequences(item)


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_sequences_decode_as_pydicom_decodes_them(path: Path) -> None:
    try:
        ds = _dcmread(path)
    except Exception:
        pytest.skip("pydicom cannot read it")
    for element, encodings, reference in _raw_sequences(ds):
        mine = rawio.decode_sequence(element, encodings)
        if mine is None:
            continue
        for attribute in ("tag", "VR", "file_tell", "is_undefined_length", "private_creator"):
            assert getattr(mine, attribute) == getattr(reference, attribute)
        assert mine.value.is_undefined_length is reference.value.is_undefined_length
        assert len(mine.value) == len(reference.value)
        for ours, theirs in zip(mine.value, reference.value, strict=True):
            _same_dataset(ours, theirs)
            for attribute in (
                "_parent_encoding",
                "_read_charset",
                "_read_implicit",
                "_read_little",
                "is_undefined_length_sequence_item",
                "seq_item_tell",
                "file_tell",
            ):
                assert getattr(ours, attribute) == getattr(theirs, attribute)


def test_sequence_decoding_is_used_for_plain_sequences(tmp_path: Path) -> None:
    ds = read_dataset(_saved(make_ct_slice(HONG, 0, size=8), tmp_path))
    element = ds.get_item(0x00101002)
    assert isinstance(element, RawDataElement)
    decoded = rawio.decode_sequence(element, ds._character_set)
    assert decoded is not None and decoded.value[0].PatientID == HONG.rrn


# --- text ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_text_values_are_pydicoms(path: Path) -> None:
    try:
        ds = _dcmread(path)
    except Exception:
        pytest.skip("pydicom cannot read it")

    def check(dataset: Dataset) -> None:
        for tag, element in list(dataset._dict.items()):
            if element.VR == "SQ":
                for item in peek(dataset, tag).value or ():
                    check(item)
            elif element.VR in {"SH", "LO", "ST", "LT", "UT", "UC", "PN"}:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    assert text_values(dataset, tag) == values_of(peek(dataset, tag).value)

    check(ds)


@pytest.mark.parametrize("charset", sorted(python_encoding))
def test_ascii_bytes_read_the_same_in_every_character_set(charset: str) -> None:
    """Why text_values may skip pydicom for ASCII without escape sequences."""
    sample = bytes(b for b in range(0x80) if b != 0x1B)
    codec = python_encoding[charset]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for codecs in ([codec], ["iso8859", codec]):
            assert decode_bytes(sample, codecs, TEXT_VR_DELIMS) == sample.decode("ascii")


CHARSETS = [
    "",
    "ISO_IR 100",
    "ISO_IR 192",
    "ISO 2022 IR 149",
    "GB18030",
    "ISO_IR 13",  # JIS X 0201: its own encoder, not plain ASCII
    "ISO 2022 IR 87",  # ends with an escape back: not plain ASCII either
    ["", "ISO 2022 IR 149"],
    ["ISO 2022 IR 6", "ISO 2022 IR 87"],
]


@pytest.mark.parametrize("charset", CHARSETS, ids=[str(c) for c in CHARSETS])
@pytest.mark.parametrize(
    ("vr", "value"),
    [
        ("LO", "CT CHEST LOW DOSE"),
        ("LO", ["A", "B~C"]),
        ("LT", "line one\r\nline two\\ back"),
        ("PN", "Doe^John^^^"),
        ("PN", "Doe^John=="),
        ("SH", "GP3OCD67AE7P6Y3GWH"),
    ],
)
def test_ascii_text_is_encoded_as_pydicom_encodes_it(charset, vr: str, value) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    codecs = convert_encodings(charset)
    values = value if isinstance(value, list) else [value]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if vr == "PN":
                expected = b"\\".join(PersonName(v).encode(codecs) for v in values)
            else:
                expected = b"\\".join(encode_string(v, codecs) for v in values)
        except Exception as exc:  # pydicom cannot encode it: neither can we
            with pytest.raises(type(exc)):
                encode_value(ds, vr, value)
            return
        if len(expected) % 2:
            expected += b" "
        assert encode_value(ds, vr, value) == expected


def test_store_keeps_elements_raw_and_pydicom_reads_them() -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO 2022 IR 149"
    ds.set_original_encoding(False, True, None)
    store(ds, 0x00081030, "LO", "홍길동 CT")
    store(ds, 0x00100010, "PN", "GP3OCD67AE7P6Y3GWH")
    assert isinstance(ds.get_item(0x00081030), RawDataElement)
    assert ds.StudyDescription == "홍길동 CT"
    assert ds.PatientName == "GP3OCD67AE7P6Y3GWH"
    assert isinstance(ds.get_item(0x00100010).tag, pydicom.tag.BaseTag)


def test_scrubber_remembers_values_but_hands_out_fresh_counts() -> None:
    scrubber = TextScrubber(names=[HONG.name], literals=[HONG.hospital_id])
    text = f"{HONG.hangul} {HONG.rrn} CT CHEST"
    first, removed = scrubber.clean(text)
    removed["rrn"] += 100  # the caller's copy
    again, removed_again = scrubber.clean(text)
    assert first == again == "CT CHEST"
    assert removed_again == Counter({"rrn": 1, "name": 1})
    assert scrubber.detect("CT CHEST") is None and scrubber.detect("CT CHEST") is None
    assert scrubber.detect(text) == "rrn"


# --- writing -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_fast_encoding_of_pseudonymized_files_equals_pydicoms(path, profile, table) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's complaints about the test files' values
            ds = read_dataset(path)
            result = pseudonymize(ds, profile, KEY, "SUWON", table=table, copy=False)
    except RejectedError:
        pytest.skip("quarantined")
    parts = rawio.encode_parts(result.dataset)
    if parts is None:
        pytest.skip("not Explicit VR Little Endian")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result.dataset.save_as(buffer, enforce_file_format=True)
    assert b"".join(parts) == buffer.getvalue() == encode_fast(result.dataset)


def test_large_values_are_parts_of_their_own(profile, table, tmp_path: Path) -> None:
    ds = read_dataset(_saved(make_ct_slice(HONG, 0, size=64), tmp_path))
    result = pseudonymize(ds, profile, KEY, "SUWON", table=table, copy=False)
    parts = rawio.encode_parts(result.dataset)
    pixels = result.dataset.get_item(0x7FE00010).value
    assert any(part is pixels for part in parts)  # written from the read buffer, not copied


def test_file_meta_is_encoded_as_pydicom_encodes_it(profile, table, tmp_path: Path) -> None:
    ds = read_dataset(_saved(make_ct_slice(HONG, 0, size=8), tmp_path))
    result = pseudonymize(ds, profile, KEY, "SUWON", table=table, copy=False)
    meta = result.dataset.file_meta
    meta[0x00020013] = DataElement(0x00020013, "SH", "GAI_DEID_1")  # decoded: not raw
    data = encode_fast(result.dataset)
    buffer = io.BytesIO()
    result.dataset.save_as(buffer, enforce_file_format=True)
    assert data == buffer.getvalue()


def test_parts_are_written_whole_through_short_writes(monkeypatch, tmp_path: Path) -> None:
    real = os.writev

    def short(fd: int, buffers) -> int:  # the kernel may write less than asked
        return real(fd, [memoryview(buffers[0])[:3]])

    monkeypatch.setattr(deid_files.os, "writev", short)
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    deid_files._write_all(fd, [b"abcdefg", b"", b"hij", b"k" * 10])
    os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"abcdefghij" + b"k" * 10


def test_written_file_is_the_encoded_one(profile, table, tmp_path: Path) -> None:
    ds = read_dataset(_saved(make_ct_slice(HONG, 0, size=16), tmp_path))
    result = pseudonymize(ds, profile, KEY, "SUWON", table=table, copy=False)
    assert write_dataset(result.dataset, tmp_path / "out", Path("a/b/c.dcm"))
    assert (tmp_path / "out/a/b/c.dcm").read_bytes() == encode_fast(result.dataset)
    assert not write_dataset(result.dataset, tmp_path / "out", Path("a/b/c.dcm"))  # same bytes


def test_an_unchanged_sequence_stays_raw_without_a_character_set(profile, table, tmp_path):
    """Looking for mislabelled Korean text does not decode (and so re-encode) the sequences."""
    ds = make_ct_slice(HONG, 0, size=8)
    del ds.SpecificCharacterSet
    for keyword in ("InstitutionName", "InstitutionAddress", "PatientAddress", "ImageComments"):
        delattr(ds, keyword)
    ds.PatientName, ds.ReferringPhysicianName, ds.OperatorsName = "Hong^Gildong", "", ""
    ds.PatientComments = ds.AdditionalPatientHistory = "CT"
    read = read_dataset(_saved(ds, tmp_path))
    result = pseudonymize(read, profile, KEY, "SUWON", table=table, copy=False)
    assert isinstance(result.dataset.get_item(0x00189346), RawDataElement)  # CTDI phantom codes


# --- the runner ----------------------------------------------------------------------------
def test_two_workers_write_what_one_writes(tmp_path: Path) -> None:
    from gai_research.deid import run_folder

    spool = tmp_path / "spool"
    spool.mkdir()
    for patient in PATIENTS[:3]:
        for number in range(6):
            name = f"{patient.hospital_id}-{number}.dcm"
            _saved(make_ct_slice(patient, number, size=16), spool, name)
    outputs = {}
    for workers in (1, 2):
        work = tmp_path / f"w{workers}"
        summary = run_folder(
            spool,
            work / "out",
            site="SUWON",
            key=KEY,
            quarantine_dir=work / "q",
            vault_dir=work / "v",
            audit_dir=work / "a",
            workers=workers,
        )
        assert summary.written == 18 and summary.reconciles
        outputs[workers] = {
            p.relative_to(work / "out"): p.read_bytes() for p in list_inputs(work / "out")
        }
    assert outputs[1] == outputs[2]


def _walk_listing(input_dir: Path) -> list[Path]:
    """What the runner listed before: os.walk, folders sorted, files that are files."""
    found = []
    for root, dirs, files in os.walk(input_dir, followlinks=False):
        dirs.sort()
        found.extend(Path(root) / name for name in sorted(files))
    return [path for path in found if path.is_file()]


def test_listing_matches_os_walk(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/f.txt", ".hidden", "a/b/deep.dcm", "Z/x", "z/y"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    os.symlink(tmp_path / "a", tmp_path / "link_to_folder")
    os.symlink(tmp_path / ".hidden", tmp_path / "link_to_file")
    os.symlink(tmp_path / "missing", tmp_path / "broken_link")
    os.mkfifo(tmp_path / "fifo")
    listed = list_inputs(tmp_path)
    assert listed == _walk_listing(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in listed] == [
        ".hidden",
        "link_to_file",
        "Z/x",
        "a/f.txt",
        "a/b/deep.dcm",
        "z/y",
    ]


@pytest.mark.skipif("fork" not in get_all_start_methods(), reason="workers see the patch if forked")
def test_a_worker_that_dies_fails_the_run(tmp_path: Path, monkeypatch) -> None:
    from concurrent.futures.process import BrokenProcessPool

    from gai_research.deid import run_folder, runner

    spool = tmp_path / "spool"
    spool.mkdir()
    for number in range(4):
        _saved(make_ct_slice(HONG, number, size=8), spool, f"{number}.dcm")
    monkeypatch.setattr(runner, "_process_chunk", lambda job, chunk: os._exit(3))  # forked
    with pytest.raises(BrokenProcessPool):
        run_folder(spool, tmp_path / "out", site="SUWON", key=KEY, quarantine_dir=tmp_path / "q",
                   vault_dir=tmp_path / "v", audit_dir=tmp_path / "a", workers=2)  # fmt: skip


@pytest.mark.parametrize(
    ("files", "workers", "size"), [(1000, 2, 15), (10, 2, 1), (100000, 16, 32), (0, 2, 1)]
)
def test_chunks_give_every_worker_many_tasks(files: int, workers: int, size: int) -> None:
    assert _chunk_size(files, workers) == size
