"""What the rules look at: a few header facts per series, read once when an instance arrives.

Only the attributes routing needs are kept (no names, IDs or dates). The series and
study UIDs are identifiers: they stay in the gateway's restricted database and in
:class:`SeriesFacts` objects that never reach a log line or a printed explanation
(explanations name a series by its number and position instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["InstanceFacts", "SeriesFacts", "instance_facts", "series_facts"]

# header attributes read from each instance (pydicom keywords); everything else is skipped
HEADER_TAGS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "Modality",
    "BodyPartExamined",
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "Manufacturer",
    "ManufacturerModelName",
    "Rows",
    "Columns",
    "ImageType",
    "ContrastBolusAgent",
    "ViewPosition",
    "ImageLaterality",
    "SeriesNumber",
)


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _int(ds: Any, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class InstanceFacts:
    """The facts of one received instance (UIDs included: restricted use only)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str
    modality: str = ""
    body_part: str = ""
    study_description: str = ""
    series_description: str = ""
    protocol_name: str = ""
    manufacturer: str = ""
    model_name: str = ""
    rows: int | None = None
    columns: int | None = None
    image_type: str = ""
    contrast: bool = False
    view: str = ""
    laterality: str = ""
    series_number: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def instance_facts(ds: Any) -> InstanceFacts:
    """Facts from a pydicom dataset (a header read with ``stop_before_pixels`` is enough)."""
    return InstanceFacts(
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        sop_uid=_text(ds, "SOPInstanceUID"),
        sop_class=_text(ds, "SOPClassUID"),
        modality=_text(ds, "Modality").upper(),
        body_part=_text(ds, "BodyPartExamined").upper(),
        study_description=_text(ds, "StudyDescription"),
        series_description=_text(ds, "SeriesDescription"),
        protocol_name=_text(ds, "ProtocolName"),
        manufacturer=_text(ds, "Manufacturer"),
        model_name=_text(ds, "ManufacturerModelName"),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        image_type=_text(ds, "ImageType").upper(),
        contrast=bool(_text(ds, "ContrastBolusAgent")),
        view=_text(ds, "ViewPosition").upper(),
        laterality=_text(ds, "ImageLaterality").upper(),
        series_number=_int(ds, "SeriesNumber"),
    )


@dataclass(frozen=True)
class SeriesFacts:
    """One series as the rules see it. ``position`` is its 1-based place in the study."""

    series_uid: str
    position: int
    modality: str = ""
    body_part: str = ""
    study_description: str = ""
    series_description: str = ""
    protocol_name: str = ""
    manufacturer: str = ""
    model_name: str = ""
    sop_classes: tuple[str, ...] = ()
    rows: int | None = None
    columns: int | None = None
    instances: int = 0
    image_type: str = ""
    contrast: bool = False
    views: tuple[str, ...] = ()
    lateralities: tuple[str, ...] = ()
    series_number: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How explanations name the series (no UID)."""
        number = f" #{self.series_number}" if self.series_number is not None else ""
        return f"series {self.position}{number} ({self.modality or '?'})"


def series_facts(instances: Iterable[InstanceFacts]) -> list[SeriesFacts]:
    """Group instance facts into series facts, in series-number then arrival order."""
    grouped: dict[str, list[InstanceFacts]] = {}
    for item in instances:
        grouped.setdefault(item.series_uid, []).append(item)

    def order(uid: str) -> tuple[int, int]:
        number = grouped[uid][0].series_number
        return (number if number is not None else 1 << 30, list(grouped).index(uid))

    out = []
    for position, uid in enumerate(sorted(grouped, key=order), start=1):
        items = grouped[uid]
        first = items[0]
        rows = [i.rows for i in items if i.rows is not None]
        columns = [i.columns for i in items if i.columns is not None]
        out.append(
            SeriesFacts(
                series_uid=uid,
                position=position,
                modality=first.modality,
                body_part=first.body_part,
                study_description=first.study_description,
                series_description=first.series_description,
                protocol_name=first.protocol_name,
                manufacturer=first.manufacturer,
                model_name=first.model_name,
                sop_classes=tuple(sorted({i.sop_class for i in items})),
                rows=min(rows) if rows else None,
                columns=min(columns) if columns else None,
                instances=len(items),
                image_type=first.image_type,
                contrast=any(i.contrast for i in items),
                views=tuple(sorted({i.view for i in items if i.view})),
                lateralities=tuple(sorted({i.laterality for i in items if i.laterality})),
                series_number=first.series_number,
            )
        )
    return out
