"""The platform home: layout, permissions, and the key rules."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gai_research.config import Settings
from gai_research.errors import HomeError
from gai_research.home import check_home, init_home, key_fingerprint, layout, read_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_layout_with_permissions(settings: Settings) -> None:
    result = init_home(settings)
    assert result.key_created
    for folder, wanted in layout(settings).items():
        assert folder.is_dir()
        assert mode(folder) == wanted, folder
    for restricted in ("secrets", "vault", "quarantine", "spool", "pacs", "audit"):
        assert mode(settings.home / restricted) == 0o700
    assert mode(settings.key_path) == 0o600
    key = settings.key_path.read_text().strip()
    assert len(key) == 64 and int(key, 16) >= 0
    check_home(settings)


def test_init_is_idempotent_and_never_overwrites_the_key(settings: Settings) -> None:
    first = init_home(settings)
    before = settings.key_path.read_bytes()
    second = init_home(settings)
    assert not second.key_created and second.created == []
    assert settings.key_path.read_bytes() == before
    assert second.key_fingerprint == first.key_fingerprint


def test_init_tightens_an_open_restricted_folder(settings: Settings) -> None:
    init_home(settings)
    settings.vault_dir.chmod(0o755)
    result = init_home(settings)
    assert result.tightened == [settings.vault_dir]
    assert mode(settings.vault_dir) == 0o700


def test_fresh_keys_differ(tmp_path: Path, settings: Settings) -> None:
    init_home(settings)
    other = settings.model_copy(update={"home": tmp_path / "second"})
    init_home(other)
    assert read_key(settings.key_path) != read_key(other.key_path)


def write_key(path: Path, text: str, mode_bits: int) -> Path:
    path.write_text(text)
    path.chmod(mode_bits)
    return path


@pytest.mark.parametrize(
    ("text", "mode_bits", "message"),
    [
        ("a" * 64, 0o644, "readable by others"),
        ("a" * 64, 0o640, "readable by others"),
        ("short-key", 0o600, "fewer than 32"),
        ("   " + "b" * 31 + "\n", 0o600, "fewer than 32"),
    ],
)
def test_unsafe_or_short_keys_are_refused(
    tmp_path: Path, text: str, mode_bits: int, message: str
) -> None:
    with pytest.raises(HomeError, match=message):
        read_key(write_key(tmp_path / "key", text, mode_bits))


def test_missing_key_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match="gai init"):
        read_key(tmp_path / "absent.key")


def test_any_key_of_32_characters_is_accepted(tmp_path: Path) -> None:
    key = read_key(write_key(tmp_path / "key", "correct horse battery staple 1234\n", 0o600))
    assert key == b"correct horse battery staple 1234"
    assert len(key_fingerprint(key)) == 16
    assert key_fingerprint(key) != key_fingerprint(key + b"x")


def test_init_refuses_an_existing_open_key(settings: Settings) -> None:
    init_home(settings)
    settings.key_path.chmod(0o644)
    with pytest.raises(HomeError, match="chmod 600"):
        init_home(settings)


def test_check_home_before_init(settings: Settings) -> None:
    with pytest.raises(HomeError, match="gai init"):
        check_home(settings)
