"""Pseudonymizing a study for a vendor outside the hospital, and mapping its answer back.

The study's files are pseudonymized with the platform key and profile (the same keyed
function as the research store, so a patient has the same pseudonym everywhere) into
the job's folder in the restricted spool. :class:`UidMap` remembers which pseudonymous
UID stands for which original one; :func:`map_back` rewrites a prediction's study,
series and image UIDs to the originals, so the result stored in the PACS appears with
the study it belongs to. World coordinates (LPS mm) and pixel positions are unchanged
by pseudonymization and are kept as they are.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from gai_research.models.errors import MalformedResultError
from gai_research.models.types import Prediction

__all__ = ["PseudonymizedStudy", "Pseudonymizer", "UidMap", "map_back"]


@dataclass
class UidMap:
    """Pseudonymous -> original UIDs of one study (study, series and SOP instances)."""

    study: dict[str, str] = field(default_factory=dict)
    series: dict[str, str] = field(default_factory=dict)
    instances: dict[str, str] = field(default_factory=dict)
    frames: dict[str, str] = field(default_factory=dict)  # frames of reference

    def add(self, pseudo: tuple[str, str, str], original: tuple[str, str, str]) -> None:
        self.study[pseudo[0]] = original[0]
        self.series[pseudo[1]] = original[1]
        self.instances[pseudo[2]] = original[2]

    def table(self) -> dict[str, str]:
        """Every pseudonymous UID -> its original (for rewriting a vendor's objects)."""
        return {**self.frames, **self.study, **self.series, **self.instances}


@dataclass
class PseudonymizedStudy:
    files: list[Path]
    uids: UidMap
    patient_pseudonym: str | None


def _uids(ds) -> tuple[str, str, str]:
    return (
        str(ds.get("StudyInstanceUID", "")),
        str(ds.get("SeriesInstanceUID", "")),
        str(ds.get("SOPInstanceUID", "")),
    )


class Pseudonymizer:
    """The platform profile, its action table and the key ring, built once per gateway.

    ``vault_dir``: the platform's re-identification vault (``settings.vault_dir``); each
    pseudonymized study's mapping (pseudonym -> patient, pseudonymous -> original study)
    is recorded there before the study leaves, as ingest records what it stores, so the
    data steward can answer a vendor's question about a pseudonymous study. The vault
    refuses a key other than the one its pseudonyms were made with.
    """

    def __init__(self, secret: bytes, vault_dir: Path | None = None) -> None:
        from gai_research.deid import ActionTable, KeyRing, load_profile
        from gai_research.home import key_fingerprint

        self.profile = load_profile()
        self.table = ActionTable.build(self.profile)
        self.keys = KeyRing.from_secret(secret)
        self.fingerprint = key_fingerprint(secret)
        self.vault = None
        if vault_dir is not None:
            from gai_research.deid.vault import Vault

            self.vault = Vault(vault_dir)
            self.vault.check_key(self.fingerprint)

    def files(
        self, paths: Sequence[Path], out_dir: Path, *, site: str, run_id: str = "gateway"
    ) -> PseudonymizedStudy:
        """Pseudonymize ``paths`` into ``out_dir`` (replaced) and record the mapping in the
        vault (``run_id`` names the run there); raises RejectedError for a file that
        cannot be made safe (burned-in text without a rule, encapsulated documents)."""
        from gai_research.deid import pseudonymize
        from gai_research.deid.files import encode_fast, read_dataset

        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True, mode=0o700)
        uids = UidMap()
        files: list[Path] = []
        pseudonym = None
        records = []
        for index, path in enumerate(paths):
            ds = read_dataset(Path(path))
            original = _uids(ds)
            frame = str(ds.get("FrameOfReferenceUID", "") or "")
            result = pseudonymize(ds, self.profile, self.keys, site, table=self.table, copy=False)
            out = result.dataset
            uids.add(_uids(out), original)
            if frame and out.get("FrameOfReferenceUID"):
                uids.frames[str(out.FrameOfReferenceUID)] = frame
            pseudonym = result.record.pseudonym
            records.append(result.record)
            data = encode_fast(out)
            if data is None:
                buffer = BytesIO()
                out.save_as(buffer, enforce_file_format=True)
                data = buffer.getvalue()
            target = out_dir / f"{index:06d}.dcm"
            target.write_bytes(data)
            files.append(target)
        if self.vault is not None:
            self.vault.record(records, run_id=run_id, key_fingerprint=self.fingerprint)
        return PseudonymizedStudy(files, uids, pseudonym)


def map_back(prediction: Prediction, uids: UidMap) -> Prediction:
    """The prediction with every pseudonymous UID replaced by the original.

    A UID the study did not contain (a vendor inventing or mixing up images) makes the
    answer unusable: :class:`MalformedResultError`, recorded against the job.
    """

    def back(table: dict[str, str], uid: str | None, what: str) -> str | None:
        if uid is None or uid == "":
            return uid
        if uid in table:
            return table[uid]
        if uid in table.values():  # already original (a model that echoes what it got)
            return uid
        raise MalformedResultError(
            f"the answer refers to a {what} that was not in the study sent",
            hint="the vendor must use the UIDs of the images it was given",
        )

    study_uid = back(uids.study, prediction.study_uid, "study")
    findings = tuple(
        dataclasses.replace(
            f,
            series_uid=back(uids.series, f.series_uid, "series"),
            sop_uid=back(uids.instances, f.sop_uid, "image"),
        )
        for f in prediction.findings
    )
    volumes = tuple(
        dataclasses.replace(v, series_uid=back(uids.series, v.series_uid, "series"))
        for v in prediction.volumes
    )
    masks = tuple(
        dataclasses.replace(m, series_uid=back(uids.series, m.series_uid, "series"))
        for m in prediction.masks
    )
    return dataclasses.replace(
        prediction,
        study_uid=study_uid or prediction.study_uid,
        findings=findings,
        volumes=volumes,
        masks=masks,
    )
