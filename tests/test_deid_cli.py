"""``gai deid`` and ``gai vault lookup`` through the real ``gai`` main()."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from gai_research import cli
from gai_research.config import Settings
from gai_research.deid.samples import PATIENTS, make_ct_slice
from gai_research.home import init_home


@pytest.fixture
def gai(capsys: pytest.CaptureFixture):
    """Run ``gai ARGS`` in-process; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def home(settings: Settings) -> Settings:
    init_home(settings)
    return settings


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    folder = tmp_path / "spool"
    folder.mkdir()
    for n in range(3):
        make_ct_slice(PATIENTS[0], n, size=8).save_as(folder / f"{n}.dcm", enforce_file_format=True)
    (folder / "readme.txt").write_text("not dicom")
    return folder


def test_deid_writes_counts_and_exits_zero(
    gai, home: Settings, spool: Path, tmp_path: Path
) -> None:
    code, out, err = gai("deid", spool, tmp_path / "out", "--site", "suwon", "--workers", "1")
    assert code == 0
    assert "read" in out and "written" in out and "quarantined: not_dicom" in out
    assert "1 patients, 1 studies" in out
    assert "deid SUWON" in err  # the progress bar, on stderr
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 3
    assert len(list(home.quarantine_dir.glob("*.reason.json"))) == 1
    assert (home.audit_dir / "deid.jsonl").is_file()


def test_quiet_has_no_progress_bar(gai, home: Settings, spool: Path, tmp_path: Path) -> None:
    code, _, err = gai("deid", spool, tmp_path / "out", "--site", "ICHEON", "--quiet")
    assert code == 0 and err == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (("--site", "MARS"), "unknown site 'MARS'"),
        (("--site", "SUWON", "--workers", "0"), "--workers 0"),
        (("--site", "SUWON", "--profile", "nope.toml"), "profile nope.toml not found"),
    ],
)
def test_bad_arguments_give_one_line(
    gai, home: Settings, spool: Path, tmp_path: Path, args, message
) -> None:
    code, out, err = gai("deid", spool, tmp_path / "out", *args)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err and err.startswith("gai deid: error:")


def test_missing_input_folder(gai, home: Settings, tmp_path: Path) -> None:
    code, _, err = gai("deid", tmp_path / "nope", tmp_path / "out", "--site", "SUWON")
    assert code == 1 and "does not exist" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "content, mode, message",
    [
        ("short", 0o600, "fewer than 32"),
        ("x" * 40, 0o644, "readable by others"),
        (None, 0o600, "not found"),
    ],
)
def test_bad_key_file_is_refused(
    gai, home, spool: Path, tmp_path: Path, content, mode: int, message: str
) -> None:
    key = tmp_path / "my.key"
    if content is not None:
        key.write_text(content)
        key.chmod(mode)
    code, _, err = gai("deid", spool, tmp_path / "out", "--site", "SUWON", "--key-file", key)
    assert code == 1 and message in err


def test_vault_lookup_for_the_steward(gai, home: Settings, spool: Path, tmp_path: Path) -> None:
    gai("deid", spool, tmp_path / "out", "--site", "SUWON", "--quiet")
    pseudonym = next(
        json.loads(line) for line in (home.audit_dir / "deid.jsonl").read_text().splitlines()
    )
    assert "patients" in pseudonym

    ds = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    code, out, _ = gai("vault", "lookup", ds.PatientID)
    assert code == 0 and PATIENTS[0].hospital_id in out and "850315-1******" in out
    code, out, _ = gai("vault", "lookup", ds.PatientID, "--json")
    assert json.loads(out)["patients"][0]["site"] == "SUWON"
    code, _, err = gai("vault", "lookup", "GPNOSUCHPSEUDONYM")
    assert code == 1 and "not in the vault" in err


def test_vault_readable_by_others_is_refused(
    gai, home: Settings, spool: Path, tmp_path: Path
) -> None:
    gai("deid", spool, tmp_path / "out", "--site", "SUWON", "--quiet")
    (home.vault_dir / "vault.sqlite3").chmod(0o644)
    code, _, err = gai("vault", "lookup", "GPX")
    assert code == 1 and "readable by others" in err
