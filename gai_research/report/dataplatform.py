"""The data-platform part of the report: what was collected, pseudonymized and shared.

Read-only, from what the platform already keeps under HOME:

- the latest catalog snapshot (:func:`gai_research.data.open_catalog`): patients, studies,
  series and instances per site and modality; studies and patients collected per month
  (first ``ingested_at`` of a study, a real UTC time, unlike the shifted study dates);
  reference labels per task and their sources;
- the catalog's ``ingest_runs`` (read-only; busy while ingest writes): pseudonymized
  objects written, duplicates and quarantined by reason, per site;
- the steward's audit trail (``HOME/audit/deid.jsonl``) for ``gai deid`` runs, and the
  quarantine's ``*.reason.json`` notes; both are restricted, so an account that cannot
  read them gets a sentence saying so instead of numbers;
- cohorts (``HOME/cohorts``), data cards (``data_cards/*.md``) and training-data exports
  (``manifest.json`` of ``gai-export/1``).

Only counts, hashes and names chosen by researchers are shown: never a UID, a pseudonym
or a path inside the store.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.report import conventions as cv
from gai_research.report.cells import Num
from gai_research.report.results import Note

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = ["PlatformFacts", "collect_platform"]

log = logging.getLogger(__name__)

COHORT_FORMAT = "gai-cohort/1"
EXPORT_FORMAT = "gai-export/1"
CARD_SKIP = {"TEMPLATE.md", "README.md"}
_SITE_ORDER = {s: i for i, s in enumerate(cv.SITES)}


@dataclass
class PlatformFacts:
    """Counts for the data-platform section, each a cited :class:`Num`."""

    available: bool = False
    notes: list[Note] = field(default_factory=list)
    snapshot: str = ""
    snapshot_created: str = ""
    totals: dict[str, Num] = field(default_factory=dict)
    by_site_modality: list[dict[str, Any]] = field(default_factory=list)
    periods: list[str] = field(default_factory=list)
    collection: list[dict[str, Any]] = field(default_factory=list)  # site, modality, cells
    collection_by_site: dict[str, list[int]] = field(default_factory=dict)
    labels: list[dict[str, Any]] = field(default_factory=list)
    ingest: list[dict[str, Any]] = field(default_factory=list)
    ingest_reasons: list[str] = field(default_factory=list)
    ingest_source: str = ""
    deid_runs: list[dict[str, Any]] = field(default_factory=list)
    deid_reasons: list[str] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    cohorts: list[dict[str, Any]] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)
    exports: list[dict[str, Any]] = field(default_factory=list)


def _count(value: Any, metric: str, source: str, kind: str, **context: Any) -> Num:
    return Num(
        None if value is None else int(value), "count", metric, source, kind, context=context
    )


def _site_key(site: str) -> tuple[int, str]:
    return (_SITE_ORDER.get(site, len(_SITE_ORDER)), site)


# --- the snapshot ---------------------------------------------------------------------------
_BY_SITE_MODALITY = """
SELECT st.site, se.modality,
       count(DISTINCT st.patient_pseudonym) AS patients,
       count(DISTINCT st.study_uid) AS studies,
       count(*) AS series,
       sum(se.n_instances) AS instances
FROM series se JOIN studies st ON st.study_uid = se.study_uid
GROUP BY ALL ORDER BY st.site, se.modality
"""
_COLLECTION = """
WITH first_in AS (
    SELECT study_uid, min(ingested_at) AS first_at FROM instances GROUP BY study_uid
), modality AS (SELECT DISTINCT study_uid, modality FROM series)
SELECT st.site, m.modality, strftime(f.first_at, '%Y-%m') AS period,
       count(DISTINCT st.study_uid) AS studies,
       count(DISTINCT st.patient_pseudonym) AS patients
FROM studies st
JOIN first_in f ON f.study_uid = st.study_uid
JOIN modality m ON m.study_uid = st.study_uid
GROUP BY ALL ORDER BY period, st.site, m.modality
"""
_STUDIES_BY_PERIOD = """
WITH first_in AS (
    SELECT study_uid, min(ingested_at) AS first_at FROM instances GROUP BY study_uid
)
SELECT st.site, strftime(f.first_at, '%Y-%m') AS period, count(*) AS studies
FROM studies st JOIN first_in f ON f.study_uid = st.study_uid
GROUP BY ALL ORDER BY period, st.site
"""
_LABELS = """
SELECT task,
       count(DISTINCT study_uid) AS studies,
       count(DISTINCT CASE WHEN kind = 'study' AND value = 1 THEN study_uid END) AS positive,
       count(*) FILTER (WHERE kind <> 'study') AS findings,
       string_agg(DISTINCT coalesce(source, '?'), ', ' ORDER BY coalesce(source, '?')) AS sources
FROM labels GROUP BY task ORDER BY task
"""


def _snapshot_facts(settings: Settings, facts: PlatformFacts) -> None:
    from gai_research.data import open_catalog
    from gai_research.errors import GaiError

    try:
        catalog = open_catalog(settings=settings)
    except GaiError as exc:
        facts.notes.append(Note("platform.no_catalog", (("why", exc.message),), "warn"))
        return
    with catalog:
        reader = catalog.reader
        snap = catalog.snapshot
        src = f"catalog snapshot {snap}"
        facts.available = True
        facts.snapshot = snap
        facts.snapshot_created = str(catalog.snapshot_info.created_at or "")
        for table in ("patients", "studies", "series", "instances"):
            n = reader.query(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py()
            facts.totals[table] = _count(n, f"total.{table}", src, "catalog")
        for row in reader.query(_BY_SITE_MODALITY).to_pylist():
            ctx = {"site": row["site"], "modality": row["modality"]}
            facts.by_site_modality.append(
                {
                    **ctx,
                    **{
                        k: _count(row[k], f"platform.{k}", src, "catalog", **ctx)
                        for k in ("patients", "studies", "series", "instances")
                    },
                }
            )
        facts.by_site_modality.sort(key=lambda r: (_site_key(r["site"]), r["modality"] or ""))
        rows = reader.query(_COLLECTION).to_pylist()
        facts.periods = sorted({r["period"] for r in rows if r["period"]})
        grid: dict[tuple[str, str], dict[str, dict[str, Num]]] = defaultdict(dict)
        for row in rows:
            ctx = {"site": row["site"], "modality": row["modality"], "period": row["period"]}
            grid[(row["site"], row["modality"])][row["period"]] = {
                "studies": _count(row["studies"], "collected.studies", src, "catalog", **ctx),
                "patients": _count(row["patients"], "collected.patients", src, "catalog", **ctx),
            }
        for (site, modality), cells in sorted(
            grid.items(), key=lambda kv: (_site_key(kv[0][0]), kv[0][1] or "")
        ):
            facts.collection.append({"site": site, "modality": modality, "cells": cells})
        by_site: dict[str, dict[str, int]] = defaultdict(dict)
        for row in reader.query(_STUDIES_BY_PERIOD).to_pylist():
            by_site[row["site"]][row["period"]] = int(row["studies"])
        facts.collection_by_site = {
            site: [by_site[site].get(p, 0) for p in facts.periods]
            for site in sorted(by_site, key=_site_key)
        }
        for row in reader.query(_LABELS).to_pylist():
            ctx = {"task": row["task"]}
            facts.labels.append(
                {
                    "task": row["task"],
                    "sources": row["sources"],
                    **{
                        k: _count(row[k], f"labels.{k}", src, "catalog", **ctx)
                        for k in ("studies", "positive", "findings")
                    },
                }
            )


# --- ingest, audit, quarantine -----------------------------------------------------------------
def _ingest_rows(
    per_site: dict[str, Counter], runs: dict[str, Counter], source: str, kind: str
) -> tuple[list[dict[str, Any]], list[str]]:
    reasons = sorted(
        {
            k[len("quarantined_") :]
            for c in per_site.values()
            for k in c
            if k.startswith("quarantined_")
        }
    )
    rows = []
    for site in sorted(per_site, key=_site_key):
        c = per_site[site]
        ctx = {"site": site}
        row = {
            "site": site,
            "runs": _count(runs[site]["runs"], "ingest.runs", source, kind, **ctx),
            "failed_runs": _count(runs[site]["failed"], "ingest.failed_runs", source, kind, **ctx),
        }
        for key in ("processed", "stored_new", "duplicates", "quarantined"):
            row[key] = _count(c.get(key, 0), f"ingest.{key}", source, kind, **ctx)
        row["reasons"] = {
            r: _count(c.get(f"quarantined_{r}", 0), f"ingest.quarantined_{r}", source, kind, **ctx)
            for r in reasons
        }
        rows.append(row)
    return rows, reasons


def _ingest_from_catalog(settings: Settings, facts: PlatformFacts) -> bool:
    from gai_research.store.catalog import connect_catalog
    from gai_research.store.errors import CatalogBusyError, StoreError

    try:
        con = connect_catalog(settings, read_only=True)
    except CatalogBusyError:
        facts.notes.append(Note("platform.ingest_busy", (), "warn"))
        return False
    except StoreError:
        return False
    try:
        rows = con.execute("SELECT site, status, counts FROM ingest_runs").fetchall()
    except Exception:  # an older catalog without the table
        return False
    finally:
        con.close()
    per_site: dict[str, Counter] = defaultdict(Counter)
    runs: dict[str, Counter] = defaultdict(Counter)
    for site, status, counts in rows:
        runs[site]["runs"] += 1
        runs[site]["failed"] += status != "ok"
        try:
            values = json.loads(counts or "{}")
        except ValueError:
            values = {}
        per_site[site].update({k: int(v) for k, v in values.items() if isinstance(v, int | float)})
    facts.ingest, facts.ingest_reasons = _ingest_rows(
        per_site, runs, "catalog ingest_runs", "ingest_runs"
    )
    facts.ingest_source = "ingest_runs"
    return True


def _read_audit(settings: Settings, facts: PlatformFacts) -> list[dict[str, Any]] | None:
    from gai_research.deid.audit import read_audit

    try:
        return read_audit(settings.audit_dir)
    except PermissionError:
        facts.notes.append(Note("platform.audit_unreadable", (), "info"))
    except (OSError, ValueError):
        facts.notes.append(Note("platform.audit_unreadable", (), "warn"))
    return None


def _audit_facts(records: list[dict[str, Any]], facts: PlatformFacts, ingest_too: bool) -> None:
    source = "audit trail deid.jsonl"
    deid: dict[str, Counter] = defaultdict(Counter)
    per_site: dict[str, Counter] = defaultdict(Counter)
    runs: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        event = str(record.get("event", ""))
        if event == "deid.run":
            site = str(record.get("site") or "?")
            deid[site]["runs"] += 1
            deid[site]["read"] += int(record.get("read") or 0)
            deid[site]["written"] += int(record.get("written") or 0)
            for reason, n in (record.get("quarantined") or {}).items():
                deid[site][f"quarantined_{reason}"] += int(n)
                deid[site]["quarantined"] += int(n)
        elif ingest_too and event.startswith("ingest.") and isinstance(record.get("sites"), dict):
            for site, counts in record["sites"].items():
                runs[site]["runs"] += 1
                per_site[site].update(
                    {k: int(v) for k, v in counts.items() if isinstance(v, int | float)}
                )
    if ingest_too and per_site:
        facts.ingest, facts.ingest_reasons = _ingest_rows(per_site, runs, source, "audit")
        facts.ingest_source = "audit"
    reasons = sorted(
        {k[len("quarantined_") :] for c in deid.values() for k in c if k.startswith("quarantined_")}
    )
    facts.deid_reasons = reasons
    for site in sorted(deid, key=_site_key):
        c, ctx = deid[site], {"site": site}
        row: dict[str, Any] = {"site": site}
        for key in ("runs", "read", "written", "quarantined"):
            row[key] = _count(c.get(key, 0), f"deid.{key}", source, "audit", **ctx)
        row["reasons"] = {
            r: _count(c.get(f"quarantined_{r}", 0), f"deid.quarantined_{r}", source, "audit", **ctx)
            for r in reasons
        }
        facts.deid_runs.append(row)


def _quarantine_facts(settings: Settings, facts: PlatformFacts) -> None:
    folder = settings.quarantine_dir
    try:
        notes = sorted(folder.glob("*.reason.json")) if folder.is_dir() else []
    except PermissionError:
        facts.notes.append(Note("platform.quarantine_unreadable", (), "info"))
        return
    counts: Counter[tuple[str, str]] = Counter()
    for path in notes:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except PermissionError:
            facts.notes.append(Note("platform.quarantine_unreadable", (), "info"))
            return
        except (OSError, ValueError):
            data = {}
        counts[(str(data.get("site") or "?"), str(data.get("reason") or "unknown"))] += 1
    source = "quarantine *.reason.json"
    for (site, reason), n in sorted(counts.items(), key=lambda kv: (_site_key(kv[0][0]), kv[0][1])):
        ctx = {"site": site, "reason": reason}
        facts.quarantine.append(
            {
                "site": site,
                "reason": reason,
                "n": _count(n, "quarantine.files", source, "quarantine", **ctx),
            }
        )


# --- cohorts, cards, exports ---------------------------------------------------------------------
def _cohorts(settings: Settings, facts: PlatformFacts) -> None:
    folder = settings.home / "cohorts"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("format") != COHORT_FORMAT:
            continue
        name = str(data.get("name", path.stem))
        src = f"cohort file {path.name}"
        facts.cohorts.append(
            {
                "name": name,
                "created": str(data.get("created_at", ""))[:10],
                "snapshot": str(data.get("snapshot", ""))[:12],
                "content_hash": str(data.get("content_hash", ""))[:12],
                "purpose": str(data.get("purpose") or "")[:160],
                "studies": _count(
                    len(data.get("studies", [])), "cohort.studies", src, "files", cohort=name
                ),
                "series": _count(
                    len(data.get("series", [])), "cohort.series", src, "files", cohort=name
                ),
            }
        )


_CARD_ROW = re.compile(r"^\|\s*([a-z ]+?)\s*\|\s*(.+?)\s*\|\s*$")


def _card(path: Path, shown: str) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# Data card"):
        return None
    fields: dict[str, str] = {}
    for line in lines[1:40]:
        match = _CARD_ROW.match(line)
        if match and match[1] not in ("field",):
            fields[match[1]] = match[2].split("`")[1] if "`" in match[2] else match[2]
    return {
        "name": lines[0].split(":", 1)[1].strip() if ":" in lines[0] else path.stem,
        "describes": fields.get("describes", ""),
        "content_hash": fields.get("content hash", "")[:12],
        "snapshot": fields.get("catalog snapshot", "")[:12],
        "created": fields.get("created", "")[:10],
        "path": shown,
    }


def _shown(path: Path, settings: Settings) -> str:
    for base, label in ((settings.home, "HOME"), (Path.cwd(), ".")):
        try:
            return f"{label}/{path.resolve().relative_to(base.resolve())}"
        except ValueError:
            continue
    return path.name


def _cards_and_exports(
    settings: Settings, facts: PlatformFacts, card_dirs: list[Path], export_dirs: list[Path]
) -> None:
    seen: set[Path] = set()
    for folder in card_dirs:
        for path in sorted(folder.glob("*.md")) if folder.is_dir() else []:
            if path.name in CARD_SKIP or path.resolve() in seen:
                continue
            seen.add(path.resolve())
            card = _card(path, _shown(path, settings))
            if card:
                facts.cards.append(card)
    for folder in export_dirs:
        if not folder.is_dir():
            continue
        manifests = [
            folder / "manifest.json",
            *folder.glob("*/manifest.json"),
            *folder.glob("*/*/manifest.json"),
        ]
        for path in manifests:
            if not path.is_file() or path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if data.get("format") != EXPORT_FORMAT:
                continue
            splits = data.get("per_split") or {}
            cohort = (data.get("cohort") or {}).get("name", "")
            src = f"export manifest {_shown(path, settings)}"
            ctx = {"export": _shown(path.parent, settings)}
            entry = {
                "path": _shown(path.parent, settings),
                "cohort": cohort,
                "created": str(data.get("created_at", ""))[:10],
                "task": data.get("task") or "",
                "format": data.get("image_format", ""),
                "items": _count(
                    sum(int(s.get("items", 0)) for s in splits.values()),
                    "export.items",
                    src,
                    "files",
                    **ctx,
                ),
                "patients": _count(
                    sum(int(s.get("patients", 0)) for s in splits.values()),
                    "export.patients",
                    src,
                    "files",
                    **ctx,
                ),
                "failed": _count(
                    len(data.get("failed") or []), "export.failed", src, "files", **ctx
                ),
                "snapshot": str((data.get("cohort") or {}).get("snapshot", ""))[:12],
            }
            facts.exports.append(entry)
            card_path = path.parent / "DATA_CARD.md"
            if card_path.is_file() and card_path.resolve() not in seen:
                seen.add(card_path.resolve())
                card = _card(card_path, _shown(card_path, settings))
                if card:
                    facts.cards.append(card)


def collect_platform(
    settings: Settings,
    *,
    card_dirs: list[Path] | None = None,
    export_dirs: list[Path] | None = None,
) -> PlatformFacts:
    """What the data-platform section shows (never raises for a missing or locked part)."""
    facts = PlatformFacts()
    _snapshot_facts(settings, facts)
    have_runs = _ingest_from_catalog(settings, facts)
    records = _read_audit(settings, facts)
    if records is not None:
        _audit_facts(records, facts, ingest_too=not have_runs)
    _quarantine_facts(settings, facts)
    _cohorts(settings, facts)
    cards = [Path("data_cards"), settings.home / "data_cards", *(card_dirs or [])]
    exports = [settings.home / "exports", Path("exports"), *(export_dirs or [])]
    _cards_and_exports(settings, facts, cards, exports)
    return facts
