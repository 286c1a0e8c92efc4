"""The catalog schema, in one place: DDL, upsert rules, snapshot order, and the docs all read it.

Every column names how an upsert treats it:

- ``key``: part of the primary key;
- ``replace``: the new row's value wins (also when it is NULL);
- ``latest``: the new row's value wins unless it is NULL (``COALESCE(new, old)``);
- ``derived``: computed by the writer from other tables (counts, modalities, slice
  spacing); never supplied by the caller;
- ``ingested_at``: kept from the first ingest unless the file's sha256 changed, so
  ingesting the same file again changes nothing (and the snapshot hash stays).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "OPERATIONAL_TABLES",
    "PREDICTIONS",
    "RESULT_TABLES",
    "SCHEMA_VERSION",
    "SNAPSHOT_TABLES",
    "TABLES",
    "Column",
    "Table",
    "create_statements",
]

#: Bumped whenever a table or column changes; written into the catalog and every snapshot.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    doc: str
    rule: str = "latest"  # key | replace | latest | derived | ingested_at
    not_null: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    order_by: tuple[str, ...]  # the deterministic row order of its snapshot file

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.rule == "key")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The columns a caller supplies (all but the derived ones)."""
        return tuple(c.name for c in self.columns if c.rule != "derived")

    def ddl(self) -> str:
        """``CREATE TABLE``; keys are enforced by the writer, not by a DuckDB index.

        An ART index on tens of millions of long UID strings costs memory and makes bulk
        loads several times slower; the single writer upserts by key instead
        (:meth:`merge_sql`) and ``reconcile`` checks that keys are unique.
        """
        cols = []
        for c in self.columns:
            null = " NOT NULL" if c.not_null or c.rule == "key" else ""
            cols.append(f"{c.name} {c.sql_type}{null}")
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(cols) + "\n)"

    def merge_sql(self, source: str, names: tuple[str, ...] | list[str] | None = None) -> list[str]:
        """Statements that upsert by key from ``source`` (unique keys, holding ``names``).

        First an ``UPDATE`` of the rows whose key exists (columns ``source`` does not
        hold keep their values), then an ``INSERT`` of the new keys.
        """
        given = tuple(names) if names is not None else self.input_names
        t = self.name
        sets = []
        for c in self.columns:
            if c.name not in given:
                continue
            if c.rule == "replace":
                sets.append(f"{c.name} = n.{c.name}")
            elif c.rule == "latest":
                sets.append(f"{c.name} = COALESCE(n.{c.name}, {t}.{c.name})")
            elif c.rule == "ingested_at":
                sets.append(
                    f"{c.name} = CASE WHEN {t}.sha256 IS NOT DISTINCT FROM n.sha256 "
                    f"THEN {t}.{c.name} ELSE n.{c.name} END"
                )
        statements = []
        if sets:
            match = " AND ".join(f"{t}.{k} = n.{k}" for k in self.key)
            statements.append(f"UPDATE {t} SET {', '.join(sets)} FROM {source} AS n WHERE {match}")
        exists = " AND ".join(f"o.{k} = n.{k}" for k in self.key)
        statements.append(
            f"INSERT INTO {t} ({', '.join(given)}) SELECT {', '.join('n.' + g for g in given)} "
            f"FROM {source} AS n WHERE NOT EXISTS (SELECT 1 FROM {t} AS o WHERE {exists})"
        )
        return statements


def _c(name: str, sql_type: str, doc: str, rule: str = "latest", not_null: bool = False) -> Column:
    return Column(name, sql_type, doc, rule, not_null)


PATIENTS = Table(
    "patients",
    "One row per patient pseudonym (one person across the three sites when deid links them).",
    (
        _c("patient_pseudonym", "VARCHAR", "PatientID after pseudonymization", "key"),
        _c("sex", "VARCHAR", "PatientSex: M, F, O or NULL"),
        _c(
            "birth_year_band",
            "INTEGER",
            "first year of the 5-year birth band (1955 = 1955-1959), from the shifted "
            "birth date or the shifted study year minus the age; approximate by the date shift",
        ),
    ),
    ("patient_pseudonym",),
)

STUDIES = Table(
    "studies",
    "One row per study.",
    (
        _c("study_uid", "VARCHAR", "StudyInstanceUID (pseudonymous: 2.25. and an integer)", "key"),
        _c(
            "patient_pseudonym",
            "VARCHAR",
            "the patient (patients.patient_pseudonym)",
            "replace",
            True,
        ),
        _c("site", "VARCHAR", "SUWON, ANSEONG or ICHEON", "replace", True),
        _c("study_date", "DATE", "StudyDate, shifted per patient by deid"),
        _c("age_years", "INTEGER", "PatientAge at the study in whole years (kept by deid)"),
        _c("modalities", "VARCHAR[]", "sorted distinct modalities of its series", "derived"),
        _c("n_series", "INTEGER", "number of series in the catalog", "derived"),
        _c("n_instances", "INTEGER", "number of instances in the catalog", "derived"),
        _c("description", "VARCHAR", "StudyDescription, cleaned by deid"),
        _c("accession_pseudonym", "VARCHAR", "AccessionNumber after pseudonymization, if any"),
    ),
    ("study_uid",),
)

SERIES = Table(
    "series",
    "One row per series, with a geometry summary.",
    (
        _c("series_uid", "VARCHAR", "SeriesInstanceUID (pseudonymous)", "key"),
        _c("study_uid", "VARCHAR", "the study (studies.study_uid)", "replace", True),
        _c("modality", "VARCHAR", "Modality (CT, DX, MG, MR, SEG, SR, ...)"),
        _c("series_number", "INTEGER", "SeriesNumber"),
        _c("body_part", "VARCHAR", "BodyPartExamined"),
        _c("manufacturer", "VARCHAR", "Manufacturer"),
        _c("model", "VARCHAR", "ManufacturerModelName"),
        _c("description", "VARCHAR", "SeriesDescription, cleaned by deid"),
        _c("frame_of_reference_uid", "VARCHAR", "FrameOfReferenceUID (pseudonymous)"),
        _c(
            "laterality",
            "VARCHAR",
            "the instances' laterality when they share one; B when they hold L and R",
            "derived",
        ),
        _c(
            "view_position",
            "VARCHAR",
            "the instances' ViewPosition when they share one (NULL when mixed)",
            "derived",
        ),
        _c("n_instances", "INTEGER", "number of instances in the catalog", "derived"),
        _c(
            "n_frames", "INTEGER", "frames over all instances (1 per single-frame image)", "derived"
        ),
        _c(
            "n_slices",
            "INTEGER",
            "distinct slice positions along the normal; n_frames when there are none",
            "derived",
        ),
        _c("image_rows", "INTEGER", "Rows"),
        _c("image_columns", "INTEGER", "Columns"),
        _c("slice_thickness_mm", "DOUBLE", "SliceThickness"),
        _c("pixel_spacing_row_mm", "DOUBLE", "PixelSpacing[0] (or ImagerPixelSpacing)"),
        _c("pixel_spacing_col_mm", "DOUBLE", "PixelSpacing[1] (or ImagerPixelSpacing)"),
        _c("image_orientation", "DOUBLE[]", "ImageOrientationPatient, 6 direction cosines"),
        _c("orientation", "VARCHAR", "AXIAL, CORONAL, SAGITTAL or OBLIQUE, from the orientation"),
        _c(
            "slice_spacing_mm", "DOUBLE", "extent / (n_slices - 1), from slice positions", "derived"
        ),
        _c("extent_mm", "DOUBLE", "distance between the first and last slice", "derived"),
    ),
    ("series_uid",),
)

INSTANCES = Table(
    "instances",
    "One row per stored file (SOP instance).",
    (
        _c("sop_uid", "VARCHAR", "SOPInstanceUID (pseudonymous)", "key"),
        _c("series_uid", "VARCHAR", "the series (series.series_uid)", "replace", True),
        _c("study_uid", "VARCHAR", "the study (studies.study_uid)", "replace", True),
        _c("instance_number", "INTEGER", "InstanceNumber", "replace"),
        _c("sop_class_uid", "VARCHAR", "SOPClassUID", "replace"),
        _c("transfer_syntax_uid", "VARCHAR", "TransferSyntaxUID of the stored file", "replace"),
        _c("n_frames", "INTEGER", "NumberOfFrames (1 when absent)", "replace"),
        _c("laterality", "VARCHAR", "ImageLaterality or Laterality (L, R, B, U)", "replace"),
        _c("view_position", "VARCHAR", "ViewPosition (PA, AP, LL, CC, MLO, ...)", "replace"),
        _c("image_rows", "INTEGER", "Rows", "replace"),
        _c("image_columns", "INTEGER", "Columns", "replace"),
        _c(
            "slice_position_mm",
            "DOUBLE",
            "ImagePositionPatient projected on the slice normal (single-frame images)",
            "replace",
        ),
        _c("path", "VARCHAR", "file path relative to the store folder", "replace", True),
        _c("size_bytes", "BIGINT", "file size", "replace", True),
        _c("sha256", "VARCHAR", "sha256 of the file, hex", "replace", True),
        _c(
            "ingested_at", "TIMESTAMP", "when the file first entered the store (UTC)", "ingested_at"
        ),
    ),
    ("series_uid", "sop_uid"),
)

LABELS = Table(
    "labels",
    "Reference labels of the disease tasks: study-level classes, CT nodules, image findings, volumes.",
    (
        _c("task", "VARCHAR", "disease task, e.g. lung_nodule_ct, breast_mg", "key"),
        _c("study_uid", "VARCHAR", "the study the label belongs to", "key"),
        _c("label_index", "INTEGER", "0, 1, ... within (task, study), in the order given", "key"),
        _c("kind", "VARCHAR", "study, nodule, finding or volume", "replace", True),
        _c(
            "name",
            "VARCHAR",
            "what is labelled: positive, nodule, mass, hippocampus_l, ...",
            "replace",
        ),
        _c("series_uid", "VARCHAR", "the series, for series/image-level labels", "replace"),
        _c("sop_uid", "VARCHAR", "the image, for findings in pixel coordinates", "replace"),
        _c("value", "DOUBLE", "class (0/1) or score; required for kind=study", "replace"),
        _c("x_mm", "DOUBLE", "patient x (mm); kind=nodule", "replace"),
        _c("y_mm", "DOUBLE", "patient y (mm); kind=nodule", "replace"),
        _c("z_mm", "DOUBLE", "patient z (mm); kind=nodule", "replace"),
        _c("diameter_mm", "DOUBLE", "diameter (mm); nodule, optional for findings", "replace"),
        _c("row_px", "DOUBLE", "pixel row (0-based); kind=finding", "replace"),
        _c("col_px", "DOUBLE", "pixel column (0-based); kind=finding", "replace"),
        _c("frame", "INTEGER", "frame number (1-based) in a multi-frame image", "replace"),
        _c("laterality", "VARCHAR", "L, R or B (mammography, X-ray)", "replace"),
        _c("view", "VARCHAR", "view position: CC, MLO, PA, ...", "replace"),
        _c("volume_ml", "DOUBLE", "volume (mL); kind=volume", "replace"),
        _c(
            "source",
            "VARCHAR",
            "where the label came from: synth, reader1, consensus, ...",
            "replace",
        ),
        _c(
            "extra",
            "VARCHAR",
            "anything else as a JSON object (query with json_extract)",
            "replace",
        ),
    ),
    ("task", "study_uid", "label_index"),
)

INGEST_RUNS = Table(
    "ingest_runs",
    "One row per ingest run (operational; not part of snapshots).",
    (
        _c("run_id", "VARCHAR", "run identifier", "key"),
        _c("site", "VARCHAR", "SUWON, ANSEONG or ICHEON", "replace", True),
        _c(
            "source",
            "VARCHAR",
            "where the run read from, e.g. pacs, folder, dicomweb",
            "replace",
            True,
        ),
        _c("started_at", "TIMESTAMP", "start (UTC)", "replace"),
        _c("finished_at", "TIMESTAMP", "end (UTC)", "replace"),
        _c("status", "VARCHAR", "ok or failed", "replace"),
        _c(
            "counts",
            "VARCHAR",
            "counts as a JSON object (received, stored, quarantined, ...)",
            "replace",
        ),
        _c("synced_through", "DATE", "study dates up to this day are complete", "replace"),
    ),
    ("started_at", "run_id"),
)

SYNC_STATE = Table(
    "sync_state",
    "Incremental sync: the last day fully synced per site and source (operational).",
    (
        _c("site", "VARCHAR", "SUWON, ANSEONG or ICHEON", "key"),
        _c("source", "VARCHAR", "the ingest source", "key"),
        _c("last_sync_date", "DATE", "the last study date synced completely", "replace"),
        _c("last_run_id", "VARCHAR", "the run that advanced it", "replace"),
        _c("updated_at", "TIMESTAMP", "when it moved (UTC)", "replace"),
    ),
    ("site", "source"),
)

PREDICTIONS = Table(
    "predictions",
    "One row per model prediction (or recorded failure) for one study of one snapshot; "
    "written by `gai models run` (gai_research.models.store), not part of snapshots.",
    (
        _c("model", "VARCHAR", "registry name of the model, e.g. baseline-lung-nodule-ct", "key"),
        _c("model_version", "VARCHAR", "the model's version (ModelInfo.version)", "key"),
        _c("snapshot", "VARCHAR", "catalog snapshot hash the study was read from", "key"),
        _c("study_uid", "VARCHAR", "the study (pseudonymous)", "key"),
        _c("status", "VARCHAR", "ok, failed, timeout or skipped", "replace", True),
        _c(
            "reason",
            "VARCHAR",
            "why it is not ok: timeout, unavailable, malformed, input, modality, error, ...",
            "replace",
        ),
        _c("error", "VARCHAR", "the error message (no patient identifiers)", "replace"),
        _c(
            "latency_s",
            "DOUBLE",
            "seconds from study handed over to prediction available (DICOM nodes: first "
            "C-STORE to last result)",
            "replace",
        ),
        _c(
            "score",
            "DOUBLE",
            "the study-level score (Prediction.score), for quick queries",
            "replace",
        ),
        _c("prediction", "VARCHAR", "the Prediction as JSON (Prediction.to_json)", "replace"),
        _c("model_info", "VARCHAR", "the ModelInfo as JSON", "replace"),
        _c("created_at", "TIMESTAMP", "when the prediction was made (UTC)", "replace", True),
    ),
    ("model", "model_version", "snapshot", "study_uid"),
)

#: The research tables, in snapshot order.
SNAPSHOT_TABLES: tuple[Table, ...] = (PATIENTS, STUDIES, SERIES, INSTANCES, LABELS)
#: The writer's own bookkeeping, kept out of snapshots so a run alone never changes a hash.
OPERATIONAL_TABLES: tuple[Table, ...] = (INGEST_RUNS, SYNC_STATE)
TABLES: dict[str, Table] = {t.name: t for t in SNAPSHOT_TABLES + OPERATIONAL_TABLES}
#: Results written next to the catalog by the model runner (kept out of snapshots: a
#: model run never changes a snapshot hash). Not in TABLES, whose columns docs/catalog.md
#: lists; docs/models.md describes these.
RESULT_TABLES: tuple[Table, ...] = (PREDICTIONS,)


def create_statements() -> list[str]:
    """DDL for a new catalog (idempotent)."""
    statements = [t.ddl() for t in (*TABLES.values(), *RESULT_TABLES)]
    statements.append(
        "CREATE TABLE IF NOT EXISTS catalog_meta (key VARCHAR NOT NULL, value VARCHAR)"
    )
    return statements
