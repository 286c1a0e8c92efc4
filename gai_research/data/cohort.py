"""Named cohorts: a selection of studies on one snapshot, with a stable content hash.

    >>> cat = gai.open_catalog()
    >>> c = gai.Cohort.from_filters("lung-ct", cat, modality="CT", task="lung_nodule_ct")
    >>> c = gai.Cohort.from_sql("old-ct", cat, "SELECT study_uid FROM studies WHERE age_years > 70")
    >>> c.save()                        # HOME/cohorts/lung-ct.json (pseudonymous UIDs only)
    >>> c = gai.Cohort.load("lung-ct")  # the same members, on the same snapshot
    >>> c.studies, c.series, c.labels("lung_nodule_ct"), len(c), c.content_hash

A cohort pins the snapshot it was built on; its members are stored, not re-queried, so
a loaded cohort is exactly the saved one. ``refreshed()`` re-runs the query on the
latest snapshot (a new hash when anything changed). The content hash is the sha256 of
the snapshot hash, the normalized query and the sorted member study UIDs; the name and
the stated purpose are not part of it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.data.errors import CohortError

if TYPE_CHECKING:
    import pandas as pd

    from gai_research.config import Settings
    from gai_research.data.catalog import Catalog

__all__ = ["COHORT_FORMAT", "Cohort", "cohorts_dir", "list_cohorts", "normalize_sql"]

COHORT_FORMAT = "gai-cohort/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\s+|[^'\"\s]+")


def cohorts_dir(settings: Settings) -> Path:
    """Where named cohorts are saved: ``HOME/cohorts``."""
    return settings.home / "cohorts"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise CohortError(
            f"invalid cohort name {name!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def normalize_sql(sql: str) -> str:
    """The query with runs of whitespace outside quotes made one space, no trailing ';'."""
    if not isinstance(sql, str) or not sql.strip():
        raise CohortError("the cohort query is empty", hint="give a SELECT that returns study_uid")
    parts = [" " if token.isspace() else token for token in _TOKENS.findall(sql.strip())]
    return "".join(parts).rstrip("; ").strip()


def _settings(settings: Settings | None) -> Settings:
    from gai_research.config import load_settings

    return settings if settings is not None else load_settings()


def _catalog(catalog: Catalog | None) -> Catalog:
    from gai_research.data.catalog import open_catalog

    return catalog if catalog is not None else open_catalog()


def _hash(snapshot: str, query: dict[str, Any], studies: tuple[str, ...]) -> str:
    content = {"format": COHORT_FORMAT, "snapshot": snapshot, "query": query, "studies": studies}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Cohort:
    """A named set of studies (and their series) on one catalog snapshot."""

    def __init__(
        self,
        name: str,
        *,
        query: dict[str, Any],
        snapshot: str,
        studies: list[str] | tuple[str, ...],
        series: list[str] | tuple[str, ...],
        purpose: str | None = None,
        created_at: str | None = None,
        created_by: str | None = None,
        settings: Settings | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.name = check_name(name)
        self.query = query
        self.snapshot = snapshot
        self.study_uids = tuple(sorted(set(studies)))
        self.series_uids = tuple(sorted(set(series)))
        self.purpose = purpose
        self.created_at = created_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.created_by = created_by or getpass.getuser()
        self._catalog = catalog
        self.settings = (
            settings if settings is not None else (catalog.settings if catalog else None)
        )

    # --- building --------------------------------------------------------------------------
    @classmethod
    def from_filters(
        cls,
        name: str,
        catalog: Catalog | None = None,
        *,
        purpose: str | None = None,
        **filters: Any,
    ) -> Cohort:
        """The studies matching keyword filters (those of :meth:`Catalog.studies`).

        Series filters (modality, body_part, manufacturer, model, series_uid) also choose
        which series of those studies belong to the cohort.
        """
        check_name(name)
        catalog = _catalog(catalog)
        normal = catalog.normalize(filters)
        studies = catalog.studies(**normal)["study_uid"].tolist()
        series = catalog.series(**normal)["series_uid"].tolist()
        return cls._built(name, catalog, {"filters": normal}, studies, series, purpose)

    @classmethod
    def from_sql(
        cls, name: str, catalog: Catalog | None = None, sql: str = "", *, purpose: str | None = None
    ) -> Cohort:
        """The studies named by a read-only query's ``study_uid`` column.

        When the result also has a ``series_uid`` column, those series are the cohort's
        series; otherwise every series of the member studies is.
        """
        check_name(name)
        catalog = _catalog(catalog)
        normal = normalize_sql(sql)
        frame = catalog.sql(normal)
        if "study_uid" not in frame.columns:
            raise CohortError(
                "the cohort query returns no study_uid column",
                hint="select study_uid (e.g. SELECT study_uid FROM studies WHERE ...)",
            )
        studies = [u for u in frame["study_uid"].dropna().unique().tolist()]
        if "series_uid" in frame.columns:
            series = frame["series_uid"].dropna().unique().tolist()
        else:
            series = catalog.series(study_uid=studies)["series_uid"].tolist() if studies else []
        return cls._built(name, catalog, {"sql": normal}, studies, series, purpose)

    @classmethod
    def _built(cls, name, catalog, query, studies, series, purpose) -> Cohort:
        if not studies:
            raise CohortError(
                f"no study matches cohort {name!r} in snapshot {catalog.snapshot[:12]}",
                hint="loosen the filters; gai.open_catalog().describe() shows what is there",
            )
        return cls(
            name,
            query=query,
            snapshot=catalog.snapshot,
            studies=studies,
            series=series,
            purpose=purpose,
            settings=catalog.settings,
            catalog=catalog,
        )

    def refreshed(self, catalog: Catalog | None = None) -> Cohort:
        """The same query run again on ``catalog`` (default: the latest snapshot)."""
        if catalog is None:
            from gai_research.data.catalog import open_catalog

            catalog = open_catalog(settings=_settings(self.settings))
        if "sql" in self.query:
            return Cohort.from_sql(self.name, catalog, self.query["sql"], purpose=self.purpose)
        return Cohort.from_filters(
            self.name, catalog, purpose=self.purpose, **self.query["filters"]
        )

    # --- identity ----------------------------------------------------------------------------
    @property
    def content_hash(self) -> str:
        """sha256 of snapshot hash + normalized query + sorted member study UIDs."""
        return _hash(self.snapshot, self.query, self.study_uids)

    @property
    def kind(self) -> str:
        return "sql" if "sql" in self.query else "filters"

    def __len__(self) -> int:
        return len(self.study_uids)

    def __contains__(self, study_uid: object) -> bool:
        return study_uid in set(self.study_uids)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cohort):
            return NotImplemented
        return self.name == other.name and self.content_hash == other.content_hash

    def __hash__(self) -> int:
        return hash((self.name, self.content_hash))

    def __repr__(self) -> str:
        return (
            f"Cohort({self.name!r}: {len(self)} studies, {len(self.series_uids)} series, "
            f"snapshot {self.snapshot[:12]}, hash {self.content_hash[:12]})"
        )

    # --- data --------------------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        """A catalog handle on the cohort's own snapshot (opened on first use)."""
        if self._catalog is None:
            from gai_research.data.catalog import open_catalog
            from gai_research.store.errors import SnapshotNotFoundError

            try:
                self._catalog = open_catalog(self.snapshot, settings=_settings(self.settings))
            except SnapshotNotFoundError as exc:
                raise CohortError(
                    f"cohort {self.name!r} was built on snapshot {self.snapshot[:12]}, "
                    f"which is gone ({exc.message})",
                    hint="rebuild it on the latest snapshot: cohort.refreshed().save(overwrite=True)",
                ) from None
            self.settings = self._catalog.settings
        return self._catalog

    @property
    def studies(self) -> pd.DataFrame:
        """The member studies (columns of :meth:`Catalog.studies`)."""
        return self.catalog.studies(study_uid=list(self.study_uids))

    @property
    def series(self) -> pd.DataFrame:
        """The member series (columns of :meth:`Catalog.series`)."""
        if not self.series_uids:
            return self.catalog.series(study_uid=list(self.study_uids)).iloc[0:0]
        return self.catalog.series(series_uid=list(self.series_uids))

    @property
    def instances(self) -> pd.DataFrame:
        """The files of the member series."""
        if not self.series_uids:
            return self.catalog.instances(study_uid=list(self.study_uids)).iloc[0:0]
        return self.catalog.instances(series_uid=list(self.series_uids))

    @property
    def patients(self) -> list[str]:
        """The patient pseudonyms of the member studies, sorted."""
        return sorted(set(self.studies["patient_pseudonym"]))

    def labels(self, task: str) -> pd.DataFrame:
        """The label rows of ``task`` for the member studies, with patient and site.

        An unknown task raises a :class:`~gai_research.data.errors.FilterError` that
        lists the tasks with labels in the cohort's snapshot.
        """
        return self.catalog.labels(task, study_uid=list(self.study_uids))

    # --- saving ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": COHORT_FORMAT,
            "name": self.name,
            "content_hash": self.content_hash,
            "snapshot": self.snapshot,
            "query": self.query,
            "purpose": self.purpose,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "studies": list(self.study_uids),
            "series": list(self.series_uids),
        }

    def path(self, settings: Settings | None = None) -> Path:
        return cohorts_dir(_settings(settings or self.settings)) / f"{self.name}.json"

    def save(self, *, overwrite: bool = False, settings: Settings | None = None) -> Path:
        """Save under ``HOME/cohorts/<name>.json``; returns the path.

        Saving the same cohort again is a no-op. A *different* cohort under an existing
        name is refused unless ``overwrite=True``.
        """
        from gai_research.store.layout import atomic_write

        settings = _settings(settings or self.settings)
        self.settings = settings
        target = self.path(settings)
        if target.is_file() and not overwrite:
            existing = Cohort.load(self.name, settings=settings)
            if existing.content_hash == self.content_hash:
                return target
            raise CohortError(
                f"another cohort is saved as {self.name!r} (hash {existing.content_hash[:12]}, "
                f"snapshot {existing.snapshot[:12]}, {len(existing)} studies)",
                hint="choose another name, or overwrite it (overwrite=True, --overwrite)",
            )
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"
        atomic_write(target, text.encode("utf-8"))
        return target

    @classmethod
    def load(cls, name: str, *, settings: Settings | None = None) -> Cohort:
        """The cohort saved under ``name``; its catalog opens on the snapshot it was built on."""
        settings = _settings(settings)
        path = cohorts_dir(settings) / f"{check_name(name)}.json"
        if not path.is_file():
            known = ", ".join(c["name"] for c in list_cohorts(settings)) or "none yet"
            raise CohortError(f"no cohort named {name!r}", hint=f"saved cohorts: {known}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != COHORT_FORMAT:
                raise ValueError("format")
            cohort = cls(
                data["name"],
                query=data["query"],
                snapshot=data["snapshot"],
                studies=data["studies"],
                series=data["series"],
                purpose=data.get("purpose"),
                created_at=data.get("created_at"),
                created_by=data.get("created_by"),
                settings=settings,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CohortError(
                f"cohort file {path} is unreadable ({type(exc).__name__})",
                hint="rebuild the cohort and save it with overwrite=True",
            ) from None
        if cohort.content_hash != data.get("content_hash"):
            raise CohortError(
                f"cohort file {path} does not match its content hash",
                hint="it was edited by hand; rebuild the cohort and save it with overwrite=True",
            )
        return cohort

    # --- outputs (implemented elsewhere) ---------------------------------------------------
    def card(self, folder: str | Path | None = None, **kwargs: Any) -> Path:
        """Write the cohort's data card (see :func:`gai_research.data.cards.write_cohort_card`)."""
        from gai_research.data.cards import write_cohort_card

        return write_cohort_card(self, folder, **kwargs)

    def export(self, out_dir: str | Path, **kwargs: Any):
        """Export training data (see :func:`gai_research.data.training_export.export`)."""
        from gai_research.data.training_export import export

        return export(self, out_dir, **kwargs)

    def to_monai(self, *args: Any, **kwargs: Any):
        """A MONAI dataset of the cohort (see :func:`gai_research.data.monai.to_monai`)."""
        from gai_research.data.monai import to_monai

        return to_monai(self, *args, **kwargs)


def list_cohorts(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every saved cohort, by name: studies, series, snapshot and hash (unreadable ones flagged)."""
    folder = cohorts_dir(_settings(settings))
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows.append(
                {
                    "name": data["name"],
                    "studies": len(data["studies"]),
                    "series": len(data["series"]),
                    "snapshot": data["snapshot"][:12],
                    "hash": data["content_hash"][:12],
                    "created": data.get("created_at", ""),
                    "query": "sql" if "sql" in data["query"] else "filters",
                }
            )
        except (OSError, ValueError, KeyError, TypeError):
            rows.append(
                {"name": path.stem, "studies": "?", "series": "?", "snapshot": "unreadable"}
            )
    return rows
