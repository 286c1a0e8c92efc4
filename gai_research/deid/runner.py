"""The folder runner: every file under a folder, pseudonymized or quarantined, in parallel.

The runner does the I/O around :func:`~gai_research.deid.engine.pseudonymize`:
reading tolerantly, writing atomically under pseudonymous names, quarantining
(the file unchanged, a reason beside it), the vault and the audit trail. Counts
reconcile: ``read == written + quarantined`` (by reason).

Work is split into chunks of file paths for a process pool (forked where the
platform allows, so workers start with the modules and tables already loaded);
each worker receives the job once, when it starts, and then reads and writes its
own files, so only paths and small records cross process boundaries.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

from gai_research.config import Site
from gai_research.deid.actions import ActionTable
from gai_research.deid.audit import append_audit, path_digest
from gai_research.deid.engine import pseudonymize
from gai_research.deid.errors import DeidError, RejectedError
from gai_research.deid.files import output_relpath, quarantine_file, read_dataset, write_dataset
from gai_research.deid.keys import KeyRing
from gai_research.deid.profile import Profile, load_profile
from gai_research.deid.types import FileOutcome, QuarantineReason, RunSummary
from gai_research.deid.vault import Vault

__all__ = ["list_inputs", "run_folder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs: given to each worker process once, when it starts."""

    profile: Profile
    table: ActionTable
    keys: KeyRing
    site: Site
    output_dir: Path
    quarantine_dir: Path
    run_id: str


def list_inputs(input_dir: Path) -> list[Path]:
    """Every file under ``input_dir`` (recursively, hidden ones too), in a stable order.

    Folders in name order, each one's files before its subfolders; links to files
    count, links to folders are not followed. One directory scan per folder: its
    entries say what they are, so files are not stat-ed again.
    """
    found: list[Path] = []
    _scan(os.fspath(input_dir), found)
    return found


def _scan(folder: str, found: list[Path]) -> None:
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:
        return  # as os.walk: an unreadable folder is skipped
    folders = []
    for entry in entries:
        try:
            is_folder = entry.is_dir()
        except OSError:
            is_folder = False
        if is_folder:
            folders.append(entry)
        elif _is_file(entry):
            found.append(Path(entry.path))
    for entry in folders:
        if not entry.is_symlink():
            _scan(entry.path, found)


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _redact(message: str) -> str:
    """An exception message with quoted values and long digit runs cut out."""
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    return re.sub(r"\d{4,}", "…", message)[:200]


class _DropPydicomRecords(logging.Filter):
    """pydicom's warnings quote element values (names, IDs); during a run they never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _process_one(job: _Job, index: int, path: Path) -> FileOutcome:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # same reason: warning texts may quote identifying values
        return _process_quietly(job, index, path)


def _process_quietly(job: _Job, index: int, path: Path) -> FileOutcome:
    try:
        ds = read_dataset(path)
        result = pseudonymize(ds, job.profile, job.keys, job.site, table=job.table, copy=False)
        relpath = output_relpath(result.dataset)
        fresh = write_dataset(result.dataset, job.output_dir, relpath)
        return FileOutcome(
            index,
            written=True,
            output=relpath.as_posix(),
            record=result.record,
            unchanged=not fresh,
        )
    except RejectedError as exc:
        reason, detail, hint = exc.reason, exc.message, exc.hint
    except (
        Exception
    ) as exc:  # a bug or a pydicom failure on odd input: quarantine, never stop the run
        reason, detail, hint = (
            QuarantineReason.FAILED,
            f"{type(exc).__name__}: {_redact(str(exc))}",
            None,
        )
        log.debug("file #%d failed with %s", index, type(exc).__name__)
    note = {
        "reason": reason.value,
        "description": reason.description,
        "detail": detail,
        "hint": hint,
        "run_id": job.run_id,
        "input_index": index,
        "quarantined_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    name = quarantine_file(path, job.quarantine_dir, note)
    return FileOutcome(index, written=False, reason=reason, detail=detail, output=name)


def _process_chunk(job: _Job, chunk: list[tuple[int, str]]) -> list[FileOutcome]:
    return [_process_one(job, index, Path(path)) for index, path in chunk]


class _Worker:
    """The job of this worker process, set once by the pool's initializer."""

    job: _Job | None = None

    @classmethod
    def start(cls, job: _Job) -> None:
        cls.job = job

    @classmethod
    def run(cls, chunk: list[tuple[int, str]]) -> list[FileOutcome]:
        if cls.job is None:  # pragma: no cover - only if the initializer did not run
            raise RuntimeError("deid worker started without its job")
        return _process_chunk(cls.job, chunk)


def _chunks(items: list[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _chunk_size(files: int, workers: int) -> int:
    """Files per task: about 32 tasks per worker (an even finish), at most 32 (a steady progress bar)."""
    return max(1, min(32, files // (workers * 32)))


def _check_folders(input_dir: Path, output_dir: Path, quarantine_dir: Path) -> None:
    if not input_dir.is_dir():
        raise DeidError(
            f"input folder {input_dir} does not exist or is not a folder", hint="check the path"
        )
    source = input_dir.resolve()
    for what, folder in (("output", output_dir), ("quarantine", quarantine_dir)):
        target = folder.resolve()
        if target == source or source in target.parents:
            raise DeidError(
                f"the {what} folder {folder} is inside the input folder",
                hint=f"choose a {what} folder outside {input_dir}, or a re-run would read its own output",
            )
        if target in source.parents:
            raise DeidError(
                f"the input folder is inside the {what} folder {folder}",
                hint="keep the two trees apart",
            )


def run_folder(
    input_dir: Path | str,
    output_dir: Path | str,
    *,
    site: Site | str,
    key: bytes,
    quarantine_dir: Path | str,
    vault_dir: Path | str,
    audit_dir: Path | str,
    profile: Profile | None = None,
    workers: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    key_fingerprint: str = "",
) -> RunSummary:
    """Pseudonymize every file under ``input_dir`` into ``output_dir``; quarantine the rest.

    ``workers`` defaults to the number of CPUs; 1 runs in this process. The vault
    gets the pseudonym -> original identifiers of every written file, the audit
    trail one record of the run. ``on_start(total)`` and ``on_file(outcome)`` are
    for progress display.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    quarantine_dir, vault_dir, audit_dir = Path(quarantine_dir), Path(vault_dir), Path(audit_dir)
    _check_folders(input_dir, output_dir, quarantine_dir)
    site = Site.parse(site)
    profile = profile if profile is not None else load_profile()
    vault = Vault(vault_dir)
    vault.check_key(key_fingerprint)
    started = time.time()
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started)) + "-" + uuid.uuid4().hex[:8]
    output_dir.mkdir(parents=True, exist_ok=True)
    quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    job = _Job(
        profile,
        ActionTable.build(profile),
        KeyRing.from_secret(key),
        site,
        output_dir,
        quarantine_dir,
        run_id,
    )
    files = [(index, str(path)) for index, path in enumerate(list_inputs(input_dir))]
    if on_start is not None:
        on_start(len(files))
    workers = max(1, workers or os.cpu_count() or 1)
    summary = RunSummary(
        run_id=run_id, site=site.value, output_dir=output_dir, quarantine_dir=quarantine_dir
    )
    outcomes = _run(job, files, workers, on_file)
    records = []
    for outcome in outcomes:
        summary.read += 1
        if outcome.written:
            summary.written += 1
            summary.unchanged += outcome.unchanged
            records.append(outcome.record)
            summary.removed.update(outcome.record.removed)
        else:
            summary.quarantined[outcome.reason] += 1
    summary.patients = len({r.pseudonym for r in records})
    summary.studies = len({r.study.pseudo_study_uid for r in records if r.study})
    summary.vault_file = vault.record(records, run_id=run_id, key_fingerprint=key_fingerprint)
    summary.elapsed_s = time.time() - started
    summary.audit_file = append_audit(
        audit_dir,
        {
            "event": "deid.run",
            "run_id": run_id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "elapsed_s": round(summary.elapsed_s, 3),
            "site": site.value,
            "input_dir_sha256": path_digest(input_dir),
            "output_dir_sha256": path_digest(output_dir),
            "read": summary.read,
            "written": summary.written,
            "unchanged": summary.unchanged,
            "quarantined": {
                reason.value: count for reason, count in sorted(summary.quarantined.items())
            },
            "patients": summary.patients,
            "studies": summary.studies,
            "removed": dict(sorted(Counter(summary.removed).items())),
            "profile": profile.name,
            "profile_sha256": profile.sha256(),
            "key_fingerprint": key_fingerprint,
            "workers": workers,
        },
    )
    return summary


def _run(
    job: _Job,
    files: list[tuple[int, str]],
    workers: int,
    on_file: Callable[[FileOutcome], None] | None,
) -> list[FileOutcome]:
    outcomes: list[FileOutcome] = []

    def done(outcome: FileOutcome) -> None:
        outcomes.append(outcome)
        if on_file is not None:
            on_file(outcome)

    if workers == 1 or len(files) < 2 * workers:
        for index, path in files:
            done(_process_one(job, index, Path(path)))
        return outcomes
    context = get_context("fork") if "fork" in get_all_start_methods() else get_context()
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_Worker.start, initargs=(job,)
    ) as pool:  # a worker that dies fails the run (BrokenProcessPool) instead of hanging it
        chunks = _chunks(files, _chunk_size(len(files), workers))
        futures = [pool.submit(_Worker.run, chunk) for chunk in chunks]
        for future in as_completed(futures):
            for outcome in future.result():
                done(outcome)
    return sorted(outcomes, key=lambda o: o.index)
