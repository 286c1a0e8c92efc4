"""Forwarding a vendor's own result objects (SEG, key-object selections, secondary
captures) to the PACS beside the gateway's SR.

A DICOM-node vendor sends its answer as DICOM objects; the ``dicom`` adapter keeps
them when it has a ``results_dir`` and lists them in ``prediction.raw["result_files"]``.
The gateway's own TID 1500 SR replaces the vendor's SR (it is written from the original
images and names the model and its origin); every other object is forwarded, rewritten
so that it appears with the original study:

* every UID of the study the vendor was given (study, series, SOP instances, frame of
  reference: pseudonymous ones when the route pseudonymized) becomes the original;
* the patient and study attributes are the original images' (the vendor may have seen
  pseudonyms);
* the object's own Series and SOP Instance UIDs are derived from (study key, model, n)
  with the platform key, so storing it again after a crash or a retry replaces it.

The rewritten objects wait in ``spool/<study key>/results/<model>.vendor/`` (restricted)
until the returner stores them with the SR.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gai_research.gateway.identity import result_uid

__all__ = ["PATIENT_STUDY", "forward_dir", "keep_vendor_objects"]

# attributes copied from the original images onto a forwarded object
PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)


def forward_dir(spool: Path, study_key: str, model: str) -> Path:
    """Where a job's rewritten vendor objects wait for the returner."""
    return Path(spool) / study_key / "results" / f"{model}.vendor"


def keep_vendor_objects(
    result_files: list[dict],
    results_dir: Path,
    *,
    out_dir: Path,
    original,
    uid_map: dict[str, str],
    secret: bytes,
    study_key: str,
    model: str,
    remove_sources: bool = True,
) -> int:
    """Rewrite the vendor's non-SR objects into ``out_dir`` (replaced); their count.

    ``original``: a header of the original study; ``uid_map``: UIDs as the vendor saw
    them -> original (empty when the study went unchanged). ``remove_sources``: remove
    the kept source files (the gateway's own spool copies) either way.
    """
    from pydicom import dcmread

    if out_dir.exists():
        shutil.rmtree(out_dir)
    sources = [Path(results_dir) / item["path"] for item in result_files]
    count = 0
    try:
        forwarded = [
            p for p, item in zip(sources, result_files, strict=True) if item["kind"] != "sr"
        ]
        if forwarded:
            out_dir.mkdir(parents=True, mode=0o700)
        series: dict[str, str] = {}
        for path in forwarded:
            ds = dcmread(path)
            _rewrite_uids(ds, uid_map)
            for keyword in PATIENT_STUDY:
                if keyword in original:
                    setattr(ds, keyword, original[keyword].value)
            vendor_series = str(ds.get("SeriesInstanceUID", ""))
            if vendor_series not in series:
                series[vendor_series] = result_uid(
                    secret, study_key, model, f"vendor-series-{len(series)}"
                )
            ds.SeriesInstanceUID = series[vendor_series]
            ds.SOPInstanceUID = result_uid(secret, study_key, model, f"vendor-instance-{count}")
            if getattr(ds, "file_meta", None) is not None:
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            target = out_dir / f"{count:03d}.dcm"
            ds.save_as(target, enforce_file_format=True)
            count += 1
    finally:
        for folder in {p.parent for p in sources} if remove_sources else ():
            shutil.rmtree(folder, ignore_errors=True)  # named by a study UID: gone at once
    return count


def _rewrite_uids(ds, table: dict[str, str]) -> None:
    """Every UI value found in ``table`` replaced by its mapping, nested sequences included."""
    if not table:
        return
    for element in ds.iterall():
        if element.VR != "UI" or element.value in (None, ""):
            continue
        if element.VM > 1:
            element.value = [table.get(str(v), str(v)) for v in element.value]
        else:
            element.value = table.get(str(element.value), str(element.value))
