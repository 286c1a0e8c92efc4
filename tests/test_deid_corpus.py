"""End to end over real files: pydicom's test and charset files, pydicom-data, the synthetic cohort.

Each input is written or quarantined with a reason, every written file reads
back, and no written file has a dciodvfy error its input did not have.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pydicom
import pytest

from gai_research.deid import run_folder
from gai_research.deid.runner import list_inputs
from tests.conftest import require_tool

pytestmark = pytest.mark.slow
KEY = b"corpus-test-key-" * 4


def _sources() -> list[Path]:
    """The folders of files pydicom ships (tests, charsets) and those of pydicom-data, on disk."""
    import pydicom.data

    folders = [
        Path(pydicom.data.__file__).parent / name for name in ("test_files", "charset_files")
    ]
    try:
        import data_store  # the pydicom-data package

        folders.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return [folder for folder in folders if folder.is_dir()]


def _deid(source: Path, work: Path):
    outcomes = []
    summary = run_folder(
        source,
        work / "out",
        site="ANSEONG",
        key=KEY,
        quarantine_dir=work / "quarantine",
        vault_dir=work / "vault",
        audit_dir=work / "audit",
        workers=2,
        on_file=outcomes.append,
    )
    return summary, sorted(outcomes, key=lambda o: o.index), list_inputs(source)


def _errors(dciodvfy: str, path: Path) -> Counter:
    result = subprocess.run(
        [dciodvfy, str(path)], capture_output=True, text=True, errors="replace", check=False
    )
    lines = [
        line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")
    ]
    return Counter(
        re.sub(r"[0-9][0-9.]*", "#", line) for line in lines
    )  # UIDs and numbers differ by design


@pytest.fixture(scope="module")
def pydicom_run(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("pydicom-files")
    source = work / "in"
    for folder in _sources():
        shutil.copytree(folder, source / folder.parent.name / folder.name)
    return (*_deid(source, work), work)


def test_every_pydicom_file_is_written_or_quarantined(pydicom_run) -> None:
    summary, outcomes, inputs, work = pydicom_run
    assert summary.read == len(inputs) > 250
    assert summary.reconciles and summary.written > 100
    for outcome in outcomes:
        if not outcome.written:
            reason = json.loads(
                (work / "quarantine" / outcome.output).with_suffix(".reason.json").read_text()
            )
            assert reason["reason"] == outcome.reason.value and reason["detail"]


def test_every_written_file_reads_back(pydicom_run) -> None:
    _, outcomes, _, work = pydicom_run
    for outcome in (o for o in outcomes if o.written):
        ds = pydicom.dcmread(work / "out" / outcome.output)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_no_new_dciodvfy_errors_on_pydicom_files(pydicom_run) -> None:
    dciodvfy = require_tool("dciodvfy")
    _, outcomes, inputs, work = pydicom_run
    worse = {}
    for outcome in (o for o in outcomes if o.written):
        new = _errors(dciodvfy, work / "out" / outcome.output) - _errors(
            dciodvfy, inputs[outcome.index]
        )
        if new:
            worse[inputs[outcome.index].name] = sorted(new)
    assert worse == {}


def test_no_new_dciodvfy_errors_on_the_synthetic_cohort(tmp_path: Path) -> None:
    dciodvfy = require_tool("dciodvfy")
    synth = pytest.importorskip("gai_research.synth")
    synth.generate_cohort(tmp_path / "cohort", patients=3, seed=7)
    summary, outcomes, inputs = _deid(tmp_path / "cohort", tmp_path / "work")
    assert summary.reconciles
    assert set(summary.quarantined) <= {"not_dicom"}  # labels and manifest only
    written = [o for o in outcomes if o.written]
    by_series: dict[str, object] = {}
    for outcome in written:  # one instance per series keeps this quick
        by_series.setdefault(str(Path(outcome.output).parent), outcome)
    worse = {}
    for outcome in by_series.values():
        new = _errors(dciodvfy, tmp_path / "work" / "out" / outcome.output) - _errors(
            dciodvfy, inputs[outcome.index]
        )
        if new:
            worse[outcome.output] = sorted(new)
    assert worse == {}
