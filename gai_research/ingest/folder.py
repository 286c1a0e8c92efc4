"""Media import: every file under a folder, or every file a DICOMDIR lists.

Each file is classified once: a Part-10 object with a usable header goes to the
spool as it is; a DICOM data set without preamble/file meta (old media) gets a file
meta and goes too; a DICOMDIR is an index, not an object; anything else is counted
as not DICOM and listed in :attr:`FolderScan.not_dicom` for the steward (never in a
message or log line: paths on media can hold names).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from gai_research.config import Site
from gai_research.ingest.errors import SourceError
from gai_research.ingest.objects import (
    DICOMDIR_SOP_CLASS,
    ObjectInfo,
    UnusableObject,
    inspect_part10,
    is_part10,
    to_part10,
)
from gai_research.ingest.spool import Spool
from gai_research.ingest.types import (
    EventHandler,
    FetchResult,
    ObjectReceived,
    ObjectRejected,
    StudyRef,
    parse_da,
)

__all__ = ["FolderScan", "FolderSource"]

log = logging.getLogger(__name__)

SOURCE = "folder"


@dataclass
class _Object:
    path: Path
    info: ObjectInfo
    part10: bool


@dataclass
class FolderScan:
    """What a folder holds: DICOM objects by study, and the files that are not objects."""

    objects: dict[str, list[_Object]] = field(default_factory=dict)  # by Study Instance UID
    not_dicom: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)  # DICOM, but the header is broken
    missing: list[Path] = field(default_factory=list)  # listed in a DICOMDIR, not on the medium
    indexes: list[Path] = field(default_factory=list)  # DICOMDIR files
    files: int = 0

    @property
    def n_objects(self) -> int:
        return sum(len(v) for v in self.objects.values())


class FolderSource:
    """A folder (or a DICOMDIR file) as a source of one site's studies."""

    def __init__(self, path: Path | str, site: Site | str) -> None:
        self.path = Path(path)
        self.site = Site.parse(site)
        self._scan: FolderScan | None = None
        if not self.path.exists():
            raise SourceError(
                "the import folder does not exist", hint="check the path of the medium"
            )

    def __repr__(self) -> str:
        return f"FolderSource(site={self.site.value})"

    # --- scanning --------------------------------------------------------------------
    def _listed_files(self) -> tuple[list[Path], list[Path], list[Path]]:
        """(files to read, DICOMDIR files, files a DICOMDIR lists but that are missing)."""
        if self.path.is_file():
            return self._dicomdir_files(self.path)
        files: list[Path] = []
        for root, dirs, names in os.walk(self.path):
            dirs.sort()
            files.extend(Path(root) / name for name in sorted(names))
        return files, [], []

    def _dicomdir_files(self, dicomdir: Path) -> tuple[list[Path], list[Path], list[Path]]:
        from pydicom import dcmread
        from pydicom.fileset import FileSet

        try:
            fileset = FileSet(dcmread(dicomdir))
        except Exception:
            # not a DICOMDIR: a single file to import
            return [dicomdir], [], []
        listed = [Path(instance.path) for instance in fileset]
        present = [p for p in listed if p.is_file()]
        missing = [p for p in listed if not p.is_file()]
        return present, [dicomdir], missing

    def scan(self, *, refresh: bool = False) -> FolderScan:
        """Read every file's header once (cached; ``refresh`` reads again)."""
        if self._scan is not None and not refresh:
            return self._scan
        files, indexes, missing = self._listed_files()
        scan = FolderScan(indexes=list(indexes), missing=missing, files=len(files))
        for path in files:
            try:
                part10 = is_part10(path)
            except OSError:
                scan.unreadable.append(path)
                continue
            try:
                info = inspect_part10(path) if part10 else to_part10(path)[1]
            except UnusableObject as exc:
                if part10:
                    scan.unreadable.append(path)
                elif exc.reason == "not DICOM":
                    scan.not_dicom.append(path)
                else:
                    scan.unreadable.append(path)
                continue
            if info.sop_class_uid == DICOMDIR_SOP_CLASS:
                scan.indexes.append(path)
                continue
            scan.objects.setdefault(info.study_uid, []).append(_Object(path, info, part10))
        log.info(
            "scanned %d file(s): %d object(s) in %d study(ies), %d not DICOM, %d unreadable",
            scan.files,
            scan.n_objects,
            len(scan.objects),
            len(scan.not_dicom),
            len(scan.unreadable),
        )
        self._scan = scan
        return scan

    # --- the Source protocol ---------------------------------------------------------
    def find_studies(
        self, since: date | None = None, until: date | None = None, modality: str | None = None
    ) -> list[StudyRef]:
        refs = []
        for uid, objects in self.scan().objects.items():
            dates = [parse_da(o.info.study_date) for o in objects]
            refs.append(
                StudyRef(
                    site=self.site,
                    study_uid=uid,
                    study_date=next((d for d in dates if d is not None), None),
                    modalities=tuple(sorted({o.info.modality for o in objects if o.info.modality})),
                    n_instances=len({o.info.sop_instance_uid for o in objects}),
                    sop_classes=tuple(sorted({o.info.sop_class_uid for o in objects})),
                )
            )
        kept = [r for r in refs if r.in_range(since, until, modality)]
        return sorted(kept, key=lambda r: (r.study_date or date.min, r.study_uid))

    def fetch(
        self, study: StudyRef, spool: Spool, on_instance: EventHandler | None = None
    ) -> FetchResult:
        """Spool the folder's objects of one study."""
        objects = self.scan().objects.get(study.study_uid, [])
        result = FetchResult(site=self.site, source=SOURCE, study=study, expected=len(objects))
        return self._spool(objects, spool, result, on_instance)

    def import_all(self, spool: Spool, on_instance: EventHandler | None = None) -> FetchResult:
        """Spool every object of the folder; non-DICOM and unreadable files are counted."""
        scan = self.scan()
        objects = [o for group in scan.objects.values() for o in group]
        result = FetchResult(
            site=self.site,
            source=SOURCE,
            expected=len(objects) + len(scan.unreadable) + len(scan.missing),
            not_dicom=len(scan.not_dicom),
        )
        result.fail("unreadable DICOM header", len(scan.unreadable))
        result.fail("listed in the DICOMDIR but missing", len(scan.missing))
        return self._spool(objects, spool, result, on_instance)

    def _spool(
        self,
        objects: list[_Object],
        spool: Spool,
        result: FetchResult,
        on_instance: EventHandler | None,
    ) -> FetchResult:
        started = time.monotonic()
        for obj in objects:
            try:
                if obj.part10:
                    entry = spool.put_file(obj.path, site=self.site, source=SOURCE)
                else:
                    entry = spool.put(to_part10(obj.path)[0], site=self.site, source=SOURCE)
            except (OSError, UnusableObject):
                reason = "file vanished or became unreadable"
                result.fail(reason)
                if on_instance is not None:
                    on_instance(ObjectRejected(self.site, SOURCE, "", 0xC000, reason))
                continue
            result.add(entry)
            if on_instance is not None:
                on_instance(
                    ObjectReceived(
                        site=self.site,
                        source=SOURCE,
                        peer="",
                        entry=entry,
                        sop_class_uid=obj.info.sop_class_uid,
                        transfer_syntax_uid=obj.info.transfer_syntax_uid,
                        study_uid=obj.info.study_uid,
                        sop_instance_uid=obj.info.sop_instance_uid,
                    )
                )
        result.seconds = time.monotonic() - started
        return result
