"""Data cards: Markdown descriptions of a cohort or an export, filled into ``data_cards/TEMPLATE.md``.

    >>> gai.Cohort.load("lung-ct").card()            # data_cards/lung-ct.md
    >>> render_card(cohort, export=summary)          # what an export writes as DATA_CARD.md

A card holds counts, distributions, hashes and the key's fingerprint only: never a
patient pseudonym, a UID, a header value that could identify someone, or the key.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import string
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.data.errors import CardError

if TYPE_CHECKING:
    import pandas as pd

    from gai_research.data.cohort import Cohort
    from gai_research.data.provenance import Provenance

__all__ = ["CARD_FIELDS", "default_template", "render_card", "write_cohort_card"]

CARD_FIELDS = (
    "name",
    "describes",
    "content_hash",
    "snapshot_hash",
    "created",
    "created_by",
    "code_version",
    "purpose",
    "sources",
    "selection",
    "population",
    "labels",
    "export",
    "pseudonymization",
    "limitations",
)
SMALL_COHORT = 30
SYNTHETIC_SOURCES = {"synth"}
INTENDED_USE = (
    "Research on pseudonymized images within the Gyeonggi provincial public-healthcare AI "
    "demonstration (Suwon, Anseong, Icheon): model development, validation and the evaluation "
    "of AI solutions. Not for clinical decisions about individual patients. Under Korea's PIPA "
    "the data are pseudonymized, not anonymous: do not try to re-identify anyone or link the "
    "data with other sources; the re-identification key stays with the data steward."
)


def default_template() -> Path:
    """``data_cards/TEMPLATE.md`` of the gai-research source tree."""
    path = Path(__file__).resolve().parents[2] / "data_cards" / "TEMPLATE.md"
    if not path.is_file():
        raise CardError(
            f"the card template {path} is missing",
            hint="pass template=PATH (a copy of data_cards/TEMPLATE.md from the repository)",
        )
    return path


def _fill(template: str, values: dict[str, str]) -> str:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise CardError(
            f"the card template is not valid: {exc}", hint="write literal braces as {{ and }}"
        ) from None
    unknown = sorted(fields - set(values))
    if unknown:
        raise CardError(
            f"the card template names an unknown field {{{unknown[0]}}}",
            hint=f"fields: {', '.join(CARD_FIELDS)}",
        )
    return template.format_map(values)


# --- Markdown helpers ------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.0f}%" if whole else "-"


def _date(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else _cell(value)


# --- sections --------------------------------------------------------------------------------
def _sources(studies: pd.DataFrame, series: pd.DataFrame) -> str:
    sites = []
    for site, group in studies.groupby("site"):
        sites.append(
            {
                "site": site,
                "patients": group["patient_pseudonym"].nunique(),
                "studies": len(group),
                "series": int(series["study_uid"].isin(group["study_uid"]).sum()),
                "first study": _date(group["study_date"].min()),
                "last study": _date(group["study_date"].max()),
            }
        )
    modalities = [
        {
            "modality": modality or "(none)",
            "studies": group["study_uid"].nunique(),
            "series": len(group),
            "instances": int(group["n_instances"].sum()),
        }
        for modality, group in series.groupby(series["modality"].fillna(""))
    ]
    devices = [
        {"manufacturer": manufacturer or "(none)", "model": model or "(none)", "series": len(group)}
        for (manufacturer, model), group in series.groupby(
            [series["manufacturer"].fillna(""), series["model"].fillna("")]
        )
    ]
    devices.sort(key=lambda r: (-r["series"], r["manufacturer"], r["model"]))
    first, last = _date(studies["study_date"].min()), _date(studies["study_date"].max())
    return "\n\n".join(
        [
            f"Study dates {first} to {last}, shifted back per patient by pseudonymization "
            "(intervals within a patient are kept; calendar dates are not real).",
            "By site:\n\n" + _table(sites, list(sites[0]) if sites else ["site"]),
            "By modality:\n\n" + _table(modalities, ["modality", "studies", "series", "instances"]),
            "By manufacturer and model:\n\n" + _table(devices, ["manufacturer", "model", "series"]),
        ]
    )


def _selection(cohort: Cohort, eligible: dict[str, int], export: dict | None) -> str:
    if "sql" in cohort.query:
        query = f"SQL on the snapshot's tables:\n\n```sql\n{cohort.query['sql']}\n```"
    else:
        filters = cohort.query["filters"]
        query = "Keyword filters (`Cohort.from_filters`):\n\n" + (
            "\n".join(
                f"- `{k}` = `{json.dumps(v, ensure_ascii=False)}`" for k, v in filters.items()
            )
            or "- (none: every study)"
        )
    flow = [
        f"- eligible: the snapshot's {eligible['studies']} studies of {eligible['patients']} patients",
        f"- included in the cohort: {len(cohort)} studies, {len(cohort.series_uids)} series",
    ]
    if export is not None:
        for reason, count in sorted(export["excluded"].items()):
            flow.append(f"- excluded from the export: {count} series ({reason})")
        if export["failed"]:
            flow.append(
                f"- failed to load, left out: {export['failed']} series (see manifest.json)"
            )
        flow.append(f"- exported: {sum(s['items'] for s in export['per_split'].values())} series")
    return query + "\n\nCase flow:\n\n" + "\n".join(flow)


def _age_band(age: Any) -> str:
    if age is None or age != age:
        return "unknown"
    low = int(age) // 10 * 10
    return f"{low}-{low + 9}"


def _population(studies: pd.DataFrame, series: pd.DataFrame, labels: pd.DataFrame) -> str:
    patients = studies.drop_duplicates("patient_pseudonym")
    n = len(patients)
    sexes = Counter(patients["sex"].fillna("unknown"))
    sex_rows = [{"sex": s, "patients": c, "share": _pct(c, n)} for s, c in sorted(sexes.items())]
    bands = Counter(_age_band(a) for a in studies["age_years"])
    age_rows = [
        {"age at study (years)": b, "studies": c, "share": _pct(c, len(studies))}
        for b, c in sorted(bands.items())
    ]
    multi = int((studies.groupby("patient_pseudonym")["site"].nunique() > 1).sum())
    parts = [
        f"{n} patients, {len(studies)} studies, {len(series)} series"
        + (f"; {multi} patients were seen at more than one site." if multi else "."),
        "Sex:\n\n" + _table(sex_rows, ["sex", "patients", "share"]),
        "Age at the study:\n\n" + _table(age_rows, ["age at study (years)", "studies", "share"]),
        "Label prevalence (study-level class per task):\n\n" + _prevalence(studies, labels),
    ]
    return "\n\n".join(parts)


def _prevalence(studies: pd.DataFrame, labels: pd.DataFrame) -> str:
    rows = []
    for task, group in labels.groupby("task"):
        classes = group[group["kind"] == "study"].groupby("study_uid")["value"].max()
        positive, total = int((classes >= 1).sum()), len(classes)
        rows.append(
            {
                "task": task,
                "studies labelled": group["study_uid"].nunique(),
                "positive": positive,
                "negative": total - positive,
                "prevalence": _pct(positive, total),
                "nodules/findings": int(group["kind"].isin(["nodule", "finding"]).sum()),
                "volumes": int((group["kind"] == "volume").sum()),
            }
        )
    unlabelled = len(studies) - labels["study_uid"].nunique()
    note = f"\n\n{unlabelled} studies have no label." if unlabelled else ""
    columns = ["task", "studies labelled", "positive", "negative", "prevalence"]
    return _table(rows, [*columns, "nodules/findings", "volumes"]) + note


def _labels(labels: pd.DataFrame) -> str:
    if labels.empty:
        return "The cohort's studies have no labels in this snapshot."
    lines = []
    for task, group in labels.groupby("task"):
        kinds = ", ".join(
            f"{count} {kind}/{name}"
            for (kind, name), count in sorted(
                Counter(zip(group["kind"], group["name"], strict=True)).items()
            )
        )
        sources = sorted(set(group["source"].dropna())) or ["not recorded"]
        how = "; ".join(
            "synthetic ground truth written with the images by gai_research.synth (exact by construction)"
            if s in SYNTHETIC_SOURCES
            else f"source recorded as '{s}'"
            for s in sources
        )
        lines.append(f"- **{task}**: {kinds}. Reference standard: {how}.")
    return "\n".join(lines)


def _export(export: dict | None) -> str:
    if export is None:
        return "This card describes a cohort, not an export (`gai export` writes its own card)."
    rows = [
        {
            "split": name,
            "items": s["items"],
            "patients": s["patients"],
            "positive patients": s["positive_patients"],
            "sites": ", ".join(s["sites"]),
        }
        for name, s in export["per_split"].items()
    ]
    masks = (
        "label masks (1 = nodule: spheres of the labelled diameter around the labelled centre)"
        if export["masks"]
        else "no voxel masks: the datalist `label` is the study class where the task has one"
    )
    fractions = ", ".join(f"{f:g}" for f in export["splits"])
    return (
        f"Format {export['image_format']} (gzipped NIfTI-1, RAS affine), task {export['task'] or '(none)'}, "
        f"{masks}. Splits by patient (no patient in two splits), stratified by site and class, "
        f"fractions {fractions}, seed {export['seed']}. Files and sha256 checksums: manifest.json; "
        "MONAI datalist: datalist.json.\n\n"
        + _table(rows, ["split", "items", "patients", "positive patients", "sites"])
    )


def _pseudonymization(found: Provenance) -> str:
    lines = []
    if found.methods:
        lines.append("- method (from the images): " + "; ".join(found.methods))
    if found.identity_removed is not None:
        lines.append(
            f"- PatientIdentityRemoved: {'YES' if found.identity_removed else 'NO on some images'}"
        )
    if found.options:
        lines.append("- options: " + "; ".join(f"{m} ({c})" for c, m in found.options))
    if found.dates:
        lines.append(f"- dates: {found.dates} (LongitudinalTemporalInformationModified)")
    if found.profiles:
        shown = "; ".join(f"{name} sha256 {digest}" for name, digest in found.profiles)
        lines.append(f"- profile (audit trail, {found.runs} runs): {shown}")
    fingerprints = list(found.audit_fingerprints)
    if found.key_fingerprint and found.key_fingerprint not in fingerprints:
        fingerprints.append(found.key_fingerprint)
    if fingerprints:
        lines.append(
            "- key fingerprint: " + ", ".join(fingerprints) + " (the key itself is never shown)"
        )
    if found.quarantined:
        counts = ", ".join(f"{reason} {count}" for reason, count in found.quarantined.items())
        lines.append(f"- quarantined at ingest (all recorded runs): {counts}")
    missing = [
        what
        for what, known in (
            ("the profile hash", found.profiles),
            ("the key fingerprint", fingerprints),
        )
        if not known
    ]
    if missing:
        lines.append(
            f"- {' and '.join(missing)}: not readable by this account; the data steward's audit "
            "trail (HOME/audit) records them for every ingest run"
        )
    return "\n".join(lines)


def _limitations(
    studies: pd.DataFrame, labels: pd.DataFrame, export: dict | None, sites_all: list[str]
) -> str:
    items = [
        "Dates are shifted back per patient by pseudonymization: intervals within a patient are "
        "real, calendar dates, weekdays and seasons are not.",
        "Ages are whole years at the study; birth dates were removed.",
    ]
    if set(labels.get("source", [])) & SYNTHETIC_SOURCES:
        items.append(
            "Images and labels are synthetic (gai_research.synth): fit for testing pipelines and "
            "tools, not for clinical conclusions."
        )
    patients = studies["patient_pseudonym"].nunique()
    if patients < SMALL_COHORT:
        items.append(f"Only {patients} patients: any estimate has a wide confidence interval.")
    missing = sorted(set(sites_all) - set(studies["site"]))
    if missing:
        items.append(f"No data from {', '.join(missing)}: results may not carry over there.")
    for task, group in labels[labels["kind"] == "study"].groupby("task"):
        share = float((group.groupby("study_uid")["value"].max() >= 1).mean())
        if share < 0.1 or share > 0.9:
            items.append(f"{task}: strongly imbalanced classes ({share:.0%} positive).")
    if export is not None and export["task"] and not export["masks"]:
        items.append(
            f"{export['task']}: no voxel masks are exported (the labels do not define a shape); "
            "2-D findings and volumes are in labels.csv and as datalist keys."
        )
    if export is not None and export["failed"]:
        items.append(
            f"{export['failed']} series could not be loaded and are missing from the export."
        )
    return "\n".join(f"- {item}" for item in items)


# --- the card --------------------------------------------------------------------------------
def _sample_files(cohort: Cohort, series: pd.DataFrame) -> list[Path]:
    """One stored file per site of the cohort (for the pseudonymization markers)."""
    if series.empty:
        return []
    first = series.drop_duplicates("site")["series_uid"].tolist()
    rows = cohort.catalog.reader.query(
        "SELECT series_uid, min(path) AS path FROM instances WHERE list_contains(?, series_uid) GROUP BY series_uid",
        [first],
    ).to_pylist()
    store = cohort.catalog.settings.store_dir
    return [store / row["path"] for row in rows]


def render_card(
    cohort: Cohort,
    *,
    export: dict[str, Any] | None = None,
    study_uids: Collection[str] | None = None,
    template: str | Path | None = None,
) -> str:
    """The card of ``cohort`` as Markdown; of an export of it, given the export's summary
    and the studies it holds (``study_uids``, default: every member)."""
    from gai_research import __version__
    from gai_research.config import Site
    from gai_research.data.provenance import read_provenance

    catalog = cohort.catalog
    studies, series = cohort.studies, cohort.series
    labels = catalog.labels(None, study_uid=list(cohort.study_uids))
    if study_uids is not None:
        chosen = set(study_uids)
        studies = studies[studies["study_uid"].isin(chosen)]
        series = series[series["study_uid"].isin(chosen)]
        labels = labels[labels["study_uid"].isin(chosen)]
    totals = catalog.reader.query(
        "SELECT count(*) AS studies, count(DISTINCT patient_pseudonym) AS patients FROM studies"
    ).to_pylist()[0]
    found = read_provenance(catalog.settings, _sample_files(cohort, series))
    text = Path(template or default_template()).read_text(encoding="utf-8")
    values = {
        "name": cohort.name,
        "describes": "training-data export" if export is not None else "cohort",
        "content_hash": f"`{cohort.content_hash}` (cohort)",
        "snapshot_hash": f"`{cohort.snapshot}`",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "created_by": getpass.getuser(),
        "code_version": __version__,
        "purpose": (f"{cohort.purpose.strip()}\n\n" if cohort.purpose else "")
        + f"Intended use: {INTENDED_USE}",
        "sources": _sources(studies, series),
        "selection": _selection(cohort, totals, export),
        "population": _population(studies, series, labels),
        "labels": _labels(labels),
        "export": _export(export),
        "pseudonymization": _pseudonymization(found),
        "limitations": _limitations(studies, labels, export, [s.value for s in Site]),
    }
    return _fill(text, values)


def write_cohort_card(
    cohort: Cohort, folder: str | Path | None = None, *, template: str | Path | None = None
) -> Path:
    """Write ``<folder>/<cohort name>.md`` (default folder: ``data_cards`` here); returns the path."""
    from gai_research.store.layout import atomic_write

    target = Path(folder if folder is not None else "data_cards") / f"{cohort.name}.md"
    atomic_write(target, render_card(cohort, template=template).encode("utf-8"))
    return target
