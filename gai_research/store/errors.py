"""Errors of the store and catalog stage.

Messages never carry a dataset value: a file is named by its path in the store (built
from pseudonymous UIDs only), an attribute by its keyword.
"""

from __future__ import annotations

from gai_research.errors import GaiError

__all__ = [
    "CatalogBusyError",
    "CatalogMissingError",
    "DuplicateInstanceError",
    "InvalidDatasetError",
    "LabelError",
    "NotPseudonymizedError",
    "QueryError",
    "SnapshotNotFoundError",
    "StoreError",
]


class StoreError(GaiError):
    """Base class of the errors raised by :mod:`gai_research.store`."""


class NotPseudonymizedError(StoreError):
    """A dataset that is not marked PatientIdentityRemoved YES (or has non-pseudonymous UIDs)."""


class InvalidDatasetError(StoreError):
    """A pseudonymized dataset that lacks what the catalog needs (a UID, the patient pseudonym)."""


class DuplicateInstanceError(StoreError):
    """Another, different file already holds this SOP instance in the store."""


class LabelError(StoreError):
    """A label row that does not fit the labels schema (unknown kind, missing coordinates)."""


class CatalogMissingError(StoreError):
    """There is no catalog (or no home) yet."""


class CatalogBusyError(StoreError):
    """The catalog database is held by another writer (there is one writer: ingest)."""


class SnapshotNotFoundError(StoreError):
    """No published snapshot matches (unknown or ambiguous hash, or none published yet)."""


class QueryError(StoreError):
    """A query on a snapshot that is not read-only, or that DuckDB cannot run."""
