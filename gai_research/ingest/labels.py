"""Reference labels keyed by original identifiers, converted to pseudonyms and catalogued.

Ground-truth tables come from the hospitals (or from ``gai synth``) keyed by what the
hospital knows: the original Study Instance UID, the accession number, or the
patient's hospital ID and the study date. They are identified data and are read in the
restricted area only. Each key is converted with the platform's key, by the same
keyed functions deid uses (:class:`gai_research.deid.KeyRing`): UIDs map to
``2.25.<int>`` and accession numbers to ``GA...`` exactly as in the images; a hospital
ID and date are looked up in the re-identification vault (the patient pseudonym may be
keyed by the RRN, which a label table does not carry). Rows are then checked against
the catalog: a row whose study, series or image the catalog does not hold is not
imported and is reported by count and line number, never by identifier. Coordinates
in patient millimetres and pixel positions are unchanged by pseudonymization (deid
keeps Image Position/Orientation and Pixel Spacing), so they are copied as they are.

:func:`import_labels` imports files of one task; :func:`import_synthetic` maps every
table of a ``gai synth`` cohort to its task and label kind.
"""

from __future__ import annotations

import csv
import logging
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gai_research.config import Settings, Site
from gai_research.ingest.errors import IngestError

__all__ = ["LabelImportError", "LabelReport", "import_labels", "import_synthetic", "read_table"]

log = logging.getLogger(__name__)

# what a column may be called in a label table -> the LabelRow field
ALIASES = {"row": "row_px", "col": "col_px", "column": "col_px", "label": "value"}
FLOAT_FIELDS = (
    "value", "x_mm", "y_mm", "z_mm", "diameter_mm", "row_px", "col_px", "volume_ml",
)  # fmt: skip
TEXT_FIELDS = ("name", "laterality", "view", "kind")
UID_FIELDS = ("series_uid", "sop_uid")
KEY_COLUMNS = frozenset(
    {"study_uid", "accession_number", "patient_id", "study_date", "site", "task", "modality"}
)
# columns never carried into ``extra`` (identifying or keys)
NEVER_EXTRA = KEY_COLUMNS | {"patient_name", "rrn", "birth_date", "sop_uid", "series_uid"}


class LabelImportError(IngestError):
    """A label table that cannot be imported (missing file, no key column, bad kind)."""


@dataclass
class LabelReport:
    """What an import did, in counts and line numbers (never an identifier)."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    imported: dict[str, int] = field(default_factory=dict)  # task -> label rows
    studies: dict[str, int] = field(default_factory=dict)  # task -> studies
    problems: dict[tuple[str, str], list[int]] = field(
        default_factory=dict
    )  # (file, what) -> lines
    snapshot: str = ""

    @property
    def rows_imported(self) -> int:
        return sum(self.imported.values())

    @property
    def rows_rejected(self) -> int:
        return sum(len(lines) for lines in self.problems.values())

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, file: str, what: str, line: int) -> None:
        self.problems.setdefault((file, what), []).append(line)

    def problem_lines(self, limit: int = 12) -> list[str]:
        """``masses_mg.csv: 3 rows with a study not in the catalog (lines 4, 5, 9)``."""
        out = []
        for (file, what), lines in sorted(self.problems.items()):
            shown = ", ".join(str(n) for n in lines[:limit])
            more = f", ... {len(lines) - limit} more" if len(lines) > limit else ""
            out.append(f"{file}: {len(lines)} row(s) {what} (lines {shown}{more})")
        return out


@dataclass(frozen=True)
class _Row:
    """One converted row, with where it came from."""

    file: str
    line: int
    task: str
    study_uid: str
    values: dict[str, Any]


def read_table(path: Path | str) -> list[dict[str, str]]:
    """The rows of a CSV (or, for ``.tsv``/``.txt``, tab-separated) file, header names lowercased."""
    path = Path(path)
    if not path.is_file():
        raise LabelImportError(f"label file {path.name} not found", hint="check the path")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        if reader.fieldnames is None:
            return []
        reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
        return [dict(row) for row in reader]


def _number(text: str | None) -> float | None:
    value = (text or "").strip()
    if not value:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _infer_kind(values: Mapping[str, Any]) -> str | None:
    if all(values.get(k) is not None for k in ("x_mm", "y_mm", "z_mm", "diameter_mm")):
        return "nodule"
    if values.get("row_px") is not None and values.get("col_px") is not None:
        return "finding"
    if values.get("volume_ml") is not None:
        return "volume"
    if values.get("value") is not None:
        return "study"
    return None


class _Keys:
    """Original keys -> pseudonymous ones: the deid KeyRing, and the vault for ID + date."""

    def __init__(self, settings: Settings) -> None:
        from gai_research.deid.keys import KeyRing
        from gai_research.home import read_key

        self.settings = settings
        self.ring = KeyRing.from_secret(read_key(settings.key_path))

    def uid(self, original: str) -> str:
        return self.ring.uid(original)

    def accession(self, site: Site, original: str) -> str:
        return self.ring.accession_number(site.value, original)

    def vault_studies(self, site: Site, patient_id: str, study_date: str) -> list[str]:
        """Pseudonymous study UIDs of a patient's studies on a day, from the vault."""
        from gai_research.deid.vault import VAULT_FILE

        path = self.settings.vault_dir / VAULT_FILE
        if not path.is_file():
            return []
        day = study_date.strip().replace("-", "")
        uri = f"file:{path}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute(
                "SELECT DISTINCT s.pseudo_study_uid FROM patients p JOIN studies s "
                "ON s.pseudonym = p.pseudonym AND s.site = p.site "
                "WHERE p.site = ? AND p.patient_id = ? AND s.study_date = ?",
                (site.value, patient_id.strip(), day),
            ).fetchall()
        return [r[0] for r in rows]


class _Catalog:
    """What the catalog holds, read from a snapshot published at the start of the import."""

    def __init__(self, reader) -> None:
        self.reader = reader
        self.studies = self._column("SELECT study_uid FROM studies")
        table = reader.query("SELECT site, accession_pseudonym, study_uid, modalities FROM studies")
        self.by_accession: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.modalities: dict[str, set[str]] = {}
        for site, accession, uid, modalities in zip(
            *(table[c].to_pylist() for c in table.column_names), strict=True
        ):
            if accession:
                self.by_accession[(site, accession)].append(uid)
            self.modalities[uid] = set(modalities or ())

    def _column(self, sql: str, params: list | None = None) -> set[str]:
        table = self.reader.query(sql, params)
        return set(table.column(0).to_pylist())

    def known(self, column: str, uids: Iterable[str]) -> set[str]:
        """Which of ``uids`` the catalog holds (``series_uid`` or ``sop_uid``), in one query."""
        table = {"series_uid": "series", "sop_uid": "instances"}[column]
        wanted = sorted(set(uids))
        if not wanted:
            return set()
        return self._column(
            f"SELECT {column} FROM {table} WHERE list_contains(?, {column})", [wanted]
        )


def _site_of(row: Mapping[str, str], site: Site | None) -> Site | None:
    text = (row.get("site") or "").strip()
    return Site.parse(text) if text else site


def _study_of(
    row: Mapping[str, str], keys: _Keys, catalog: _Catalog, site: Site | None
) -> tuple[str | None, str]:
    """(pseudonymous study UID, '') or (None, why) for one row."""
    if (row.get("study_uid") or "").strip():
        return keys.uid(row["study_uid"]), ""
    where = _site_of(row, site)
    if (row.get("accession_number") or "").strip():
        if where is None:
            return None, "with an accession number but no site (give --site or a site column)"
        found = catalog.by_accession.get(
            (where.value, keys.accession(where, row["accession_number"])), []
        )
        return (found[0], "") if len(found) == 1 else (None, _why(found, "accession number"))
    if (row.get("patient_id") or "").strip() and (row.get("study_date") or "").strip():
        if where is None:
            return None, "with a patient ID but no site (give --site or a site column)"
        found = keys.vault_studies(where, row["patient_id"], row["study_date"])
        modality = (row.get("modality") or "").strip().upper()
        if len(found) > 1 and modality:
            found = [uid for uid in found if modality in catalog.modalities.get(uid, set())]
        return (found[0], "") if len(found) == 1 else (None, _why(found, "patient ID and date"))
    return None, "without a study key (study_uid, accession_number, or patient_id + study_date)"


def _why(found: list[str], what: str) -> str:
    if not found:
        return f"whose {what} matches no study in the catalog"
    return f"whose {what} matches {len(found)} studies (add a modality column)"


class _Converter:
    """Converts the rows of label tables, collecting problems by line number."""

    def __init__(self, keys: _Keys, catalog: _Catalog, report: LabelReport) -> None:
        self.keys = keys
        self.catalog = catalog
        self.report = report
        self.rows: list[_Row] = []
        self.spoiled: set[tuple[str, str]] = set()  # (task, study) with a rejected row

    def convert(
        self,
        file: str,
        rows: Iterable[tuple[int, Mapping[str, str]]],
        *,
        task: str | None,
        site: Site | None = None,
        kind: str | None = None,
        source: str | None = None,
        extra: Iterable[str] = (),
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """Convert ``(line, row)`` pairs of one table; problems go to the report."""
        carried = [c.lower() for c in extra if c.lower() not in NEVER_EXTRA]
        converted: list[_Row] = []
        for line, raw in rows:
            self.report.rows_read += 1
            row = {ALIASES.get(k, k): (v or "") for k, v in raw.items() if k is not None}
            row_task = (task or row.get("task") or "").strip()
            if not row_task:
                self.report.problem(file, "without a task (give --task or a task column)", line)
                continue
            study, why = _study_of(row, self.keys, self.catalog, site)
            if study is None:
                self.report.problem(file, why, line)
                continue
            if study not in self.catalog.studies:
                self.report.problem(file, "with a study not in the catalog", line)
                continue
            values, why = self._values(row, defaults, kind, source, carried, study)
            if values is None:
                self._reject(file, line, why, row_task, study)
                continue
            converted.append(_Row(file, line, row_task, study, values))
        self._check_references(converted)

    def _reject(self, file: str, line: int, why: str, task: str, study: str) -> None:
        self.report.problem(file, why, line)
        self.spoiled.add((task, study))

    def _check_references(self, rows: list[_Row]) -> None:
        """Keep the rows whose series and image the catalog holds (one query per kind)."""
        known = {
            column: self.catalog.known(
                column, (r.values[column] for r in rows if column in r.values)
            )
            for column in ("series_uid", "sop_uid")
        }
        for row in rows:
            for column, what in (("series_uid", "series"), ("sop_uid", "image")):
                if column in row.values and row.values[column] not in known[column]:
                    self._reject(
                        row.file,
                        row.line,
                        f"whose {what} is not in the catalog",
                        row.task,
                        row.study_uid,
                    )
                    break
            else:
                self.rows.append(row)

    def _values(
        self,
        row: Mapping[str, str],
        defaults: Mapping[str, Any] | None,
        kind: str | None,
        source: str | None,
        carried: list[str],
        study: str,
    ) -> tuple[dict[str, Any] | None, str]:
        from gai_research.store import LabelError, LabelRow

        values: dict[str, Any] = dict(defaults or {})
        try:
            for name in FLOAT_FIELDS:
                if row.get(name, "").strip():
                    values[name] = _number(row[name])
            if row.get("frame", "").strip():
                values["frame"] = int(row["frame"])
        except ValueError:
            return None, "with a value that is not a number"
        for name in TEXT_FIELDS:
            if row.get(name, "").strip():
                values[name] = row[name].strip()
        for name in UID_FIELDS:  # checked against the catalog per table, in one query
            if row.get(name, "").strip():
                values[name] = self.keys.uid(row[name])
        values.setdefault("kind", kind or _infer_kind(values) or "")
        if source:
            values.setdefault("source", source)
        bonus = {c: row[c].strip() for c in carried if row.get(c, "").strip()}
        if bonus:
            values["extra"] = bonus
        try:
            LabelRow(study_uid=study, **values).validated()
        except LabelError as exc:
            return None, f"rejected: {exc.message}"
        return values, ""

    def store(self, writer) -> None:
        """Write the rows task by task; a study with a rejected row keeps its old labels."""
        from gai_research.store import LabelRow

        by_task: dict[str, list[LabelRow]] = defaultdict(list)
        for row in self.rows:
            if (row.task, row.study_uid) in self.spoiled:
                self.report.problem(row.file, "of a study with a rejected row (kept out)", row.line)
                continue
            by_task[row.task].append(LabelRow(study_uid=row.study_uid, **row.values))
        for task, items in sorted(by_task.items()):
            self.report.imported[task] = writer.add_labels(task, items)
            self.report.studies[task] = len({r.study_uid for r in items})


def _numbered(rows: list[dict[str, str]]) -> list[tuple[int, dict[str, str]]]:
    """Rows with their line in the file (the header is line 1)."""
    return list(enumerate(rows, start=2))


def _session(settings: Settings, lock_wait: float):
    from gai_research.ingest.pipeline import open_writer
    from gai_research.store import open_snapshot

    writer = open_writer(settings, wait=lock_wait)
    try:
        snapshot = writer.publish_snapshot()  # the catalog as it is now
        reader = open_snapshot(settings, snapshot.id)
    except BaseException:
        writer.close()
        raise
    return writer, reader


def import_labels(
    settings: Settings,
    files: Iterable[Path | str],
    *,
    task: str | None,
    site: Site | str | None = None,
    kind: str | None = None,
    source: str | None = None,
    extra: Iterable[str] = (),
    lock_wait: float = 60.0,
) -> LabelReport:
    """Import label tables of one ``task`` (or of the tasks their ``task`` column names).

    The task's labels of every study the tables name are replaced by theirs, so give all
    of a task's tables in one call. ``extra`` names columns to keep in ``labels.extra``.
    """
    site = Site.parse(site) if site is not None else None
    tables = [(Path(f), read_table(f)) for f in files]
    keys = _Keys(settings)
    report = LabelReport(files=[p.name for p, _ in tables])
    writer, reader = _session(settings, lock_wait)
    try:
        convert = _Converter(keys, _Catalog(reader), report)
        for path, table in tables:
            convert.convert(
                path.name, _numbered(table), task=task, site=site, kind=kind, source=source,
                extra=extra,
            )  # fmt: skip
        convert.store(writer)
        report.snapshot = writer.publish_snapshot().id
    finally:
        reader.close()
        writer.close()
    log.info("labels: %d rows imported, %d rejected", report.rows_imported, report.rows_rejected)
    return report


# --- the synthetic cohort ------------------------------------------------------------------
#: table of ``gai synth`` -> (task, label kind, fixed values)
SYNTHETIC_TABLES: dict[str, tuple[str | None, str, dict[str, str]]] = {
    "studies.csv": (None, "study", {"name": "positive"}),  # task: its task column
    "nodules_ct.csv": ("lung_nodule_ct", "nodule", {"name": "nodule"}),
    "findings_dx.csv": ("lung_nodule_dx", "finding", {"name": "nodule"}),
    "masses_mg.csv": ("breast_mg", "finding", {"name": "mass"}),
    "hemorrhage_ct.csv": ("stroke_ct", "volume", {"name": "hemorrhage"}),
    "volumes_mr.csv": ("dementia_mr", "volume", {}),  # three structures per line
}
VOLUME_COLUMNS = {
    "hippocampus_left_ml": "hippocampus_l",
    "hippocampus_right_ml": "hippocampus_r",
    "hippocampus_ml": "hippocampus",
}


def _synthetic_table(folder: Path, name: str) -> list[tuple[int, dict[str, str]]]:
    rows = _numbered(read_table(folder / name))
    if name != "volumes_mr.csv":
        return rows
    return [
        (line, {**row, "name": structure, "volume_ml": row.get(column, "")})
        for line, row in rows
        for column, structure in VOLUME_COLUMNS.items()
    ]


def import_synthetic(
    settings: Settings, folder: Path | str, *, lock_wait: float = 60.0
) -> LabelReport:
    """Import every ground-truth table of a ``gai synth`` cohort (``OUT`` or ``OUT/labels``).

    studies.csv gives each study's class (kind ``study``, name ``positive``, under the
    task of its ``task`` column); the others give nodules (chest CT), findings (chest
    X-ray nodules, mammography masses) and volumes (hippocampi with the ``group`` in
    ``extra``, hemorrhage with its centre), each under its task, all in one call per
    task so that a study's class and its findings stay together.
    """
    folder = Path(folder)
    if (folder / "labels").is_dir():
        folder = folder / "labels"
    if not (folder / "studies.csv").is_file():
        raise LabelImportError(
            f"{folder} holds no synthetic cohort labels (studies.csv)",
            hint="point at a `gai synth` output folder or its labels/ folder",
        )
    tables = {name: _synthetic_table(folder, name) for name in SYNTHETIC_TABLES}
    keys = _Keys(settings)
    report = LabelReport(files=list(SYNTHETIC_TABLES))
    writer, reader = _session(settings, lock_wait)
    try:
        convert = _Converter(keys, _Catalog(reader), report)
        for name, (task, kind, defaults) in SYNTHETIC_TABLES.items():
            extra = ("group",) if name == "volumes_mr.csv" else ()
            convert.convert(
                name, tables[name], task=task, kind=kind, source="synth", extra=extra,
                defaults=defaults,
            )  # fmt: skip
        convert.store(writer)
        report.snapshot = writer.publish_snapshot().id
    finally:
        reader.close()
        writer.close()
    log.info("labels: %d rows imported, %d rejected", report.rows_imported, report.rows_rejected)
    return report
