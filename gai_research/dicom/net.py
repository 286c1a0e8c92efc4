"""DIMSE client helpers shared by every stage that talks to a DICOM node.

C-ECHO, C-STORE of files and study-level C-FIND with pynetdicom, with failures
turned into :class:`~gai_research.errors.ServiceError` messages that name the node
and say what to check. No identifier reaches a message: files are named by their
position in the batch, never by path or patient.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gai_research.errors import ServiceError

__all__ = [
    "DicomNode",
    "StoreResult",
    "associate",
    "echo",
    "find_studies",
    "release",
    "store_files",
]

log = logging.getLogger(__name__)

# study-level attributes a C-FIND asks for (return keys)
STUDY_RETURN_KEYS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "PatientID",
    "PatientName",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
MAX_CONTEXTS = 120  # pynetdicom allows 128 requested presentation contexts


@dataclass(frozen=True)
class DicomNode:
    """A remote application entity: who we call and where."""

    ae_title: str
    host: str
    port: int
    label: str = ""

    def __str__(self) -> str:
        name = f"{self.label} " if self.label else ""
        return f"{name}{self.ae_title}@{self.host}:{self.port}"


@dataclass
class StoreResult:
    """What a C-STORE batch did. ``sent + failed`` always equals the files offered."""

    offered: int = 0
    sent: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)


def associate(
    node: DicomNode,
    calling_ae: str,
    contexts: list | None = None,
    *,
    timeout: float = 30.0,
    evt_handlers: list | None = None,
    **kwargs,
):
    """Open an association with ``node``, or raise a ServiceError that says what to check.

    Nagle's algorithm is turned off on our side (:func:`gai_research.dicom.sockets.tune_socket`).
    Extra keyword arguments (``ext_neg``, ``max_pdu`` ...) go to pynetdicom's ``AE.associate``.
    """
    from pynetdicom import AE, evt

    from gai_research.dicom.sockets import tune_socket

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    handlers = [(evt.EVT_CONN_OPEN, tune_socket), *(evt_handlers or [])]
    try:
        assoc = ae.associate(
            node.host,
            node.port,
            contexts=contexts,
            ae_title=node.ae_title,
            evt_handlers=handlers,
            **kwargs,
        )
    except OSError as exc:  # bad host name and the like
        raise ServiceError(
            f"cannot reach {node}: {exc}", hint="check the node's host and port"
        ) from None
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        raise ServiceError(
            f"{node} rejected the association",
            hint=f"check that it knows our AE title {calling_ae!r} from this host and its called AE title",
        )
    raise ServiceError(
        f"no DICOM answer from {node}",
        hint="is it running? (`gai pacs status` for the site PACS) and is the port right?",
    )


def release(assoc) -> None:
    """Release an association that is up; abort it when the peer is gone."""
    if assoc is not None and assoc.is_established:
        try:
            assoc.release()
        except Exception:  # a dead peer
            assoc.abort()


def echo(node: DicomNode, calling_ae: str, timeout: float = 10.0) -> bool:
    """C-ECHO; True when the node answers with Success."""
    from pynetdicom import build_context
    from pynetdicom.sop_class import Verification

    assoc = associate(node, calling_ae, [build_context(Verification)], timeout=timeout)
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0x0000
    finally:
        release(assoc)


def find_studies(
    node: DicomNode, calling_ae: str, *, extra_keys: Sequence[str] = (), **match: str
) -> list[dict[str, object]]:
    """Study-root C-FIND at STUDY level; ``match`` holds matching keys (e.g. StudyDate="20260501-").

    Returns one dict per study with the keys of ``STUDY_RETURN_KEYS`` plus ``extra_keys``
    (e.g. ``SOPClassesInStudy``): strings, multi-valued ones as lists.
    """
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.SpecificCharacterSet = "ISO_IR 192"
    keys = (*STUDY_RETURN_KEYS, *extra_keys)
    for keyword in keys:
        setattr(query, keyword, match.get(keyword, ""))
    for keyword, value in match.items():
        if keyword not in keys:
            setattr(query, keyword, value)
    from pynetdicom import build_context

    assoc = associate(node, calling_ae, [build_context(FIND)])
    studies: list[dict[str, object]] = []
    try:
        for status, identifier in assoc.send_c_find(query, FIND):
            if not status:
                raise ServiceError(
                    f"C-FIND to {node} timed out or the association was aborted",
                    hint="retry; check the node's log",
                )
            if status.Status in (0xFF00, 0xFF01) and identifier is not None:
                studies.append({kw: _plain(identifier.get(kw)) for kw in keys})
            elif status.Status != 0x0000:
                raise ServiceError(
                    f"C-FIND to {node} failed with status 0x{status.Status:04X}",
                    hint="check the query keys",
                )
    finally:
        release(assoc)
    return studies


def _plain(value):
    from pydicom.multival import MultiValue

    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return [str(v) for v in value]
    if isinstance(value, int | float):
        return value
    return str(value)


def _contexts_for(files: Sequence[Path]) -> tuple[list, list[tuple[str, str] | None]]:
    """Presentation contexts for the files' (SOP class, transfer syntax) pairs, from file meta only."""
    from pydicom.filereader import read_file_meta_info
    from pynetdicom import build_context

    keys: list[tuple[str, str] | None] = []
    for path in files:
        try:
            meta = read_file_meta_info(path)
            keys.append((str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)))
        except Exception:  # unreadable file: counted as failed by store_files
            keys.append(None)
    pairs = sorted({k for k in keys if k is not None})
    contexts = [build_context(sop, [ts]) for sop, ts in pairs]
    return contexts, keys


def store_files(
    node: DicomNode,
    files: Iterable[Path],
    calling_ae: str,
    *,
    on_file: Callable[[bool], None] | None = None,
    retries: int = 2,
    timeout: float = 30.0,
) -> StoreResult:
    """C-STORE every file to ``node``; a dropped association is re-opened up to ``retries`` times.

    ``timeout`` bounds the association request and each DIMSE response (seconds).

    Files that cannot be read or are refused are counted in ``reasons`` and the batch goes on.
    ``on_file(ok)`` is called once per file (progress bars).
    """
    from pydicom import dcmread

    files = list(files)
    result = StoreResult(offered=len(files))
    contexts, keys = _contexts_for(files)
    if len(contexts) > MAX_CONTEXTS:
        raise ServiceError(
            f"{len(contexts)} SOP class/transfer syntax pairs in one batch (at most {MAX_CONTEXTS})",
            hint="send the files in smaller batches",
        )

    def done(ok: bool, reason: str = "") -> None:
        if ok:
            result.sent += 1
        else:
            result.failed += 1
            result.reasons[reason] += 1
        if on_file is not None:
            on_file(ok)

    assoc = None
    drops = 0
    try:
        for index, (path, key) in enumerate(zip(files, keys, strict=True)):
            if key is None:
                done(False, "not a readable DICOM file")
                continue
            try:
                dataset = dcmread(path)
            except Exception:
                done(False, "not a readable DICOM file")
                continue
            while True:
                if assoc is None or not assoc.is_established:
                    assoc = associate(node, calling_ae, contexts, timeout=timeout)
                status = assoc.send_c_store(dataset)
                if status and "Status" in status:
                    break
                drops += 1
                log.warning(
                    "association with %s dropped at file %d of %d", node, index + 1, len(files)
                )
                assoc = None
                if drops > retries:
                    raise ServiceError(
                        f"{node} dropped the association {drops} times ({result.sent} of {len(files)} files sent)",
                        hint="check the node's log; rerunning sends the rest (stored copies are kept once)",
                    )
            code = int(status.Status)
            if code in (0x0000, 0xB000, 0xB007, 0xB006):  # success and warnings
                done(True)
            else:
                done(False, f"refused with status 0x{code:04X}")
    finally:
        release(assoc)
    return result
