"""What a model is handed: a :class:`StudyInput` built from a catalog snapshot or from files.

- :func:`study_inputs` / :func:`study_input`: from a catalog snapshot (the runner, the
  evaluation): series handles with absolute file paths in the pseudonymized store and the
  series' catalog facts as ``meta``; one query for many studies.
- :func:`study_inputs_from_files` / :func:`study_input_from_files`: from DICOM files on
  disk (the gateway, the vendor simulators), grouped by study and series from their headers.

Files within a series are in acquisition order: InstanceNumber, then slice position,
then SOP Instance UID.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.models.errors import ModelInputError
from gai_research.models.types import SeriesHandle, StudyInput

if TYPE_CHECKING:
    from gai_research.config import Settings
    from gai_research.data.catalog import Catalog

__all__ = [
    "SERIES_META",
    "study_input",
    "study_input_from_files",
    "study_inputs",
    "study_inputs_from_files",
]

#: catalog ``series`` columns handed to models as ``SeriesHandle.meta``
SERIES_META = (
    "series_number",
    "body_part",
    "manufacturer",
    "model",
    "description",
    "laterality",
    "view_position",
    "n_instances",
    "n_slices",
    "image_rows",
    "image_columns",
    "slice_thickness_mm",
    "slice_spacing_mm",
    "pixel_spacing_row_mm",
    "pixel_spacing_col_mm",
    "orientation",
    "frame_of_reference_uid",
)

_QUERY = """
SELECT i.study_uid, i.series_uid, i.path, i.instance_number, i.slice_position_mm, i.sop_uid,
       se.modality, {meta}, st.site, st.patient_pseudonym
FROM instances i
JOIN series se ON se.series_uid = i.series_uid
JOIN studies st ON st.study_uid = i.study_uid
WHERE list_contains(?, i.study_uid) {series_filter}
ORDER BY i.study_uid, se.series_number NULLS LAST, i.series_uid,
         i.instance_number NULLS LAST, i.slice_position_mm NULLS LAST, i.sop_uid
"""


def _plain(value: Any) -> Any:
    """A JSON-able Python value (numpy scalars and NaN from pandas made plain)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def study_inputs(
    catalog: Catalog,
    study_uids: Iterable[str],
    *,
    settings: Settings | None = None,
    series_uids: Iterable[str] | None = None,
) -> dict[str, StudyInput]:
    """StudyInputs of ``study_uids`` from ``catalog``'s snapshot, by study UID.

    ``series_uids`` limits each study to those series (a cohort's series); a study with
    no (chosen) files is left out of the result. File paths are absolute, under
    ``settings.store_dir`` (default: the catalog's settings).
    """
    settings = settings if settings is not None else catalog.settings
    wanted = sorted(set(study_uids))
    if not wanted:
        return {}
    params: list[Any] = [wanted]
    series_filter = ""
    if series_uids is not None:
        series_filter = "AND list_contains(?, i.series_uid)"
        params.append(sorted(set(series_uids)))
    meta_sql = ", ".join(f"se.{c}" for c in SERIES_META)
    rows = catalog.reader.query(
        _QUERY.format(meta=meta_sql, series_filter=series_filter), params
    ).to_pylist()
    store = Path(settings.store_dir)
    files: dict[str, dict[str, list[Path]]] = defaultdict(dict)
    series_rows: dict[str, dict[str, Any]] = {}
    study_rows: dict[str, dict[str, Any]] = {}
    for row in rows:
        files[row["study_uid"]].setdefault(row["series_uid"], []).append(store / row["path"])
        series_rows.setdefault(row["series_uid"], row)
        study_rows.setdefault(row["study_uid"], row)
    out: dict[str, StudyInput] = {}
    for study_uid, by_series in files.items():
        handles = tuple(
            SeriesHandle(
                series_uid=series_uid,
                study_uid=study_uid,
                modality=str(series_rows[series_uid]["modality"] or ""),
                files=tuple(paths),
                meta={c: _plain(series_rows[series_uid][c]) for c in SERIES_META},
            )
            for series_uid, paths in by_series.items()
        )
        first = study_rows[study_uid]
        out[study_uid] = StudyInput(
            study_uid=study_uid,
            series=handles,
            site=first["site"],
            patient_pseudonym=first["patient_pseudonym"],
            snapshot=catalog.snapshot,
        )
    return out


def study_input(
    catalog: Catalog,
    study_uid: str,
    *,
    settings: Settings | None = None,
    series_uids: Iterable[str] | None = None,
) -> StudyInput:
    """One study of ``catalog``'s snapshot as a model receives it."""
    found = study_inputs(catalog, [study_uid], settings=settings, series_uids=series_uids)
    if study_uid not in found:
        raise ModelInputError(
            f"study {study_uid} has no files in snapshot {catalog.snapshot[:12]}",
            hint="check the study UID against catalog.studies(), or the series chosen",
            study_uid=study_uid,
        )
    return found[study_uid]


# --- from files ---------------------------------------------------------------------------
def _text(ds: Any, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    return str(value)


def _number(ds: Any, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _position(ds: Any) -> float | None:
    """ImagePositionPatient projected on the slice normal (None for projection images)."""
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if not position or not orientation or len(orientation) != 6 or len(position) != 3:
        return None
    r = [float(v) for v in orientation[:3]]
    c = [float(v) for v in orientation[3:]]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    return sum(float(p) * n for p, n in zip(position, normal, strict=True))


def study_inputs_from_files(paths: Iterable[str | Path]) -> list[StudyInput]:
    """StudyInputs from DICOM files, grouped by study and series from their headers.

    Files that are not DICOM, or lack a study or series UID, are a ModelInputError
    (it counts them; it never quotes a header value). Studies come sorted by UID.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    by_study: dict[str, dict[str, list[tuple[tuple, Path, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    unreadable = 0
    paths = [Path(p) for p in paths]
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            unreadable += 1
            continue
        study, series = _text(ds, "StudyInstanceUID"), _text(ds, "SeriesInstanceUID")
        if study is None or series is None:
            unreadable += 1
            continue
        number = ds.get("InstanceNumber")
        position = _position(ds)
        order = (
            int(number) if number not in (None, "") else 1 << 30,
            position if position is not None else 0.0,
            _text(ds, "SOPInstanceUID") or "",
        )
        by_study[study][series].append((order, path, ds))
    if unreadable:
        raise ModelInputError(
            f"{unreadable} of {len(paths)} files are not DICOM images with study and series UIDs",
            hint="hand over DICOM files only",
        )
    if not by_study:
        raise ModelInputError("no files were given", hint="hand over the study's DICOM files")
    studies = []
    for study_uid in sorted(by_study):
        handles = []
        first = None
        for series_uid, items in sorted(by_study[study_uid].items()):
            items.sort(key=lambda item: item[0])
            ds = items[0][2]
            first = first or ds
            handles.append(
                SeriesHandle(
                    series_uid=series_uid,
                    study_uid=study_uid,
                    modality=_text(ds, "Modality") or "",
                    files=tuple(path for _, path, _ in items),
                    meta=_file_meta(ds, len(items)),
                )
            )
        handles.sort(
            key=lambda h: (
                h.meta.get("series_number") is None,
                h.meta.get("series_number") or 0,
                h.series_uid,
            )
        )
        studies.append(
            StudyInput(
                study_uid=study_uid,
                series=tuple(handles),
                patient_pseudonym=_text(first, "PatientID"),
            )
        )
    return studies


def _file_meta(ds: Any, n_instances: int) -> dict[str, Any]:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or (None, None)
    number = ds.get("SeriesNumber")
    return {
        "series_number": int(number) if number not in (None, "") else None,
        "body_part": _text(ds, "BodyPartExamined"),
        "manufacturer": _text(ds, "Manufacturer"),
        "model": _text(ds, "ManufacturerModelName"),
        "description": _text(ds, "SeriesDescription"),
        "laterality": _text(ds, "ImageLaterality") or _text(ds, "Laterality"),
        "view_position": _text(ds, "ViewPosition"),
        "n_instances": n_instances,
        "image_rows": int(ds.Rows) if "Rows" in ds else None,
        "image_columns": int(ds.Columns) if "Columns" in ds else None,
        "slice_thickness_mm": _number(ds, "SliceThickness"),
        "pixel_spacing_row_mm": float(spacing[0]) if spacing[0] is not None else None,
        "pixel_spacing_col_mm": float(spacing[1]) if spacing[1] is not None else None,
        "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"),
    }


def study_input_from_files(paths: Sequence[str | Path] | Iterable[str | Path]) -> StudyInput:
    """One study from its DICOM files; files of more than one study are a ModelInputError."""
    studies = study_inputs_from_files(paths)
    if len(studies) != 1:
        raise ModelInputError(
            f"the files hold {len(studies)} studies, not one",
            hint="hand over one study at a time, or use study_inputs_from_files",
        )
    return studies[0]
