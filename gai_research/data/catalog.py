"""``gai.open_catalog()``: a read-only handle on one catalog snapshot for researchers.

    >>> cat = gai.open_catalog()                      # latest snapshot; or open_catalog("3f2a9c1b")
    >>> cat.snapshot                                  # record this hash with your results
    >>> cat.studies(site="SUWON", modality="CT", age_min=60, task="lung_nodule_ct")
    >>> cat.series(manufacturer="SIEMENS", date_from="2026-03-01")
    >>> cat.sql("SELECT site, count(*) FROM studies GROUP BY site")
    >>> cat.describe()                                # counts by site, modality, manufacturer

Filters and their values are checked (:mod:`gai_research.data.filters`); results are
pandas DataFrames in a fixed order. Dates are the shifted dates of the pseudonymized
images. The handle never opens the database that ingest writes; it reads the immutable
Parquet files of one snapshot, so its answers do not change while ingest runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gai_research.data.errors import FilterError
from gai_research.data.filters import build_query, normalize_filters

if TYPE_CHECKING:
    import pandas as pd

    from gai_research.config import Settings
    from gai_research.store.reader import SnapshotReader
    from gai_research.store.types import Snapshot

__all__ = ["Catalog", "CatalogDescription", "open_catalog"]


def open_catalog(snapshot: str | None = None, *, settings: Settings | None = None) -> Catalog:
    """A read-only catalog handle on the latest snapshot, or one pinned by hash (or prefix).

    ``settings`` default to :func:`gai_research.config.load_settings` (``GAI_HOME``,
    ``gai.toml``). Use it as a context manager, or just let it go.
    """
    from gai_research.config import load_settings
    from gai_research.store.reader import open_snapshot

    settings = settings if settings is not None else load_settings()
    return Catalog(open_snapshot(settings, snapshot), settings)


@dataclass(frozen=True)
class CatalogDescription:
    """Counts of a snapshot: totals and DataFrames by site, modality and manufacturer."""

    snapshot: str
    created_at: str
    totals: dict[str, int]
    by_site: pd.DataFrame
    by_modality: pd.DataFrame
    by_manufacturer: pd.DataFrame

    def __str__(self) -> str:
        head = ", ".join(
            f"{self.totals[k]} {k}"
            for k in ("patients", "studies", "series", "instances", "labels")
        )
        parts = [f"snapshot {self.snapshot[:12]} (published {self.created_at}): {head}"]
        for title, frame in (
            ("by site", self.by_site),
            ("by modality", self.by_modality),
            ("by manufacturer", self.by_manufacturer),
        ):
            parts.append(f"\n{title}\n{frame.to_string(index=False) if len(frame) else '(none)'}")
        return "\n".join(parts)

    def _repr_html_(self) -> str:  # Jupyter
        blocks = [f"<p>snapshot <code>{self.snapshot[:12]}</code>: {self.totals}</p>"]
        for title, frame in (
            ("by site", self.by_site),
            ("by modality", self.by_modality),
            ("by manufacturer", self.by_manufacturer),
        ):
            blocks.append(f"<h4>{title}</h4>{frame.to_html(index=False)}")
        return "".join(blocks)


class Catalog:
    """Read-only queries on one snapshot; every result is a pandas DataFrame."""

    def __init__(self, reader: SnapshotReader, settings: Settings) -> None:
        self._reader = reader
        self.settings = settings
        self._tasks: tuple[str, ...] | None = None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        tables = self.snapshot_info.tables
        return (
            f"Catalog(snapshot {self.snapshot[:12]}: {tables.get('patients', 0)} patients, "
            f"{tables.get('studies', 0)} studies, {tables.get('series', 0)} series)"
        )

    def close(self) -> None:
        self._reader.close()

    # --- identity ----------------------------------------------------------------------
    @property
    def snapshot(self) -> str:
        """The snapshot's content hash: name it with any result built from this handle."""
        return self._reader.snapshot.id

    @property
    def snapshot_info(self) -> Snapshot:
        return self._reader.snapshot

    @property
    def reader(self) -> SnapshotReader:
        """The underlying :class:`~gai_research.store.SnapshotReader` (Arrow, relations)."""
        return self._reader

    # --- queries -------------------------------------------------------------------------
    def tasks(self) -> tuple[str, ...]:
        """The disease tasks that have labels in this snapshot."""
        if self._tasks is None:
            rows = self._reader.query("SELECT DISTINCT task FROM labels ORDER BY task")
            self._tasks = tuple(rows.column("task").to_pylist())
        return self._tasks

    def normalize(self, filters: dict[str, Any]) -> dict[str, Any]:
        """Filters checked against the filter list and this snapshot's tasks (canonical form)."""
        normal = normalize_filters(filters)
        unknown = [t for t in normal.get("task", []) if t not in self.tasks()]
        if unknown:
            known = ", ".join(self.tasks()) or "none: this snapshot has no labels"
            raise FilterError(f"unknown task {unknown[0]!r}", hint=f"tasks with labels: {known}")
        return normal

    def _select(self, level: str, filters: dict[str, Any]) -> pd.DataFrame:
        sql, params = build_query(level, self.normalize(filters))
        return self._reader.df(sql, params)

    def studies(self, **filters: Any) -> pd.DataFrame:
        """Studies matching every filter, with the patient's sex and birth-year band.

        Filters: site, modality, body_part, manufacturer, model, date_from, date_to,
        age_min, age_max, sex, task, label, patient, study_uid, series_uid (see
        :data:`gai_research.data.filters.FILTERS`). A series filter (modality, ...)
        keeps the studies that have at least one such series.
        """
        return self._select("studies", filters)

    def series(self, **filters: Any) -> pd.DataFrame:
        """Series matching every filter, with their study's site, date, patient, age and sex."""
        return self._select("series", filters)

    def instances(self, **filters: Any) -> pd.DataFrame:
        """Instances (files) of the matching series; ``path`` is relative to the store."""
        return self._select("instances", filters)

    def labels(self, task: str | None = None, **filters: Any) -> pd.DataFrame:
        """Label rows (of one task, or all) of the studies matching ``filters``."""
        if task is not None:
            self.normalize({"task": task})
        sql, params = build_query("studies", self.normalize(filters))
        query = (
            f"WITH chosen AS ({sql}) SELECT l.*, c.patient_pseudonym, c.site FROM labels l "
            "JOIN chosen c ON c.study_uid = l.study_uid"
            + (" WHERE l.task = ?" if task is not None else "")
            + " ORDER BY l.task, c.site, l.study_uid, l.label_index"
        )
        return self._reader.df(query, [*params, task] if task is not None else params)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Any one read-only statement on the tables patients, studies, series, instances,
        labels (docs/catalog.md lists their columns)."""
        return self._reader.df(query, params)

    def describe(self) -> CatalogDescription:
        """Totals, and counts by site, modality and manufacturer (what `gai catalog stats` shows)."""
        import pandas as pd

        from gai_research.store.reader import catalog_stats

        stats = catalog_stats(self._reader)
        return CatalogDescription(
            snapshot=stats["snapshot"],
            created_at=stats["created_at"],
            totals={k: int(v) for k, v in stats["totals"].items()},
            by_site=pd.DataFrame(stats["by_site"]),
            by_modality=pd.DataFrame(stats["by_modality"]),
            by_manufacturer=pd.DataFrame(stats["by_manufacturer"]),
        )
