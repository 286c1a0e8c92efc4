"""Users' homes: created private, example notebooks copied once, never overwritten."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gai_research.config import Settings, load_settings
from gai_research.hub.errors import HubError
from gai_research.hub.provision import (
    EXAMPLES,
    Home,
    notebooks_source,
    provision_home,
    resolve_home,
)
from tests.test_hub_support import PREFIX, is_root, os_accounts, public_tempdir


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "01_explore_store.ipynb").write_text('{"cells": []}')
    (folder / "README.md").write_text("# notebooks")
    (folder / "scratch.py").write_text("not an example")
    return folder


def test_first_spawn_makes_a_private_home_with_the_examples(tmp_path: Path, examples: Path) -> None:
    home = Home(tmp_path / "users" / "kim")
    copied = provision_home(home, examples)
    assert stat.S_IMODE(home.path.stat().st_mode) == 0o700
    assert sorted(p.name for p in copied) == ["01_explore_store.ipynb", "README.md"]
    assert (home.path / EXAMPLES / "01_explore_store.ipynb").read_text() == '{"cells": []}'


def test_later_spawns_keep_the_users_copies(tmp_path: Path, examples: Path) -> None:
    home = Home(tmp_path / "kim")
    provision_home(home, examples)
    mine = home.path / EXAMPLES / "01_explore_store.ipynb"
    mine.write_text('{"cells": ["my work"]}')
    assert provision_home(home, examples) == []
    assert "my work" in mine.read_text()


def test_no_examples_is_fine(tmp_path: Path) -> None:
    assert provision_home(Home(tmp_path / "kim"), None) == []
    assert (tmp_path / "kim").is_dir()


def test_the_repository_notebooks_are_the_default(settings: Settings, tmp_path: Path) -> None:
    source = notebooks_source(settings)
    assert source is not None and (source / "01_explore_store.ipynb").is_file()
    custom = load_settings(home=settings.home, hub={"notebooks_dir": tmp_path})
    assert notebooks_source(custom) == tmp_path


def test_demo_homes_are_under_the_users_folder(settings: Settings, tmp_path: Path) -> None:
    assert resolve_home(settings, tmp_path, "kim") == Home(tmp_path / "kim")


def test_production_needs_an_os_account(settings: Settings, tmp_path: Path) -> None:
    custom = load_settings(home=settings.home, hub={"spawner": "local-users"})
    with pytest.raises(HubError, match="useradd"):
        resolve_home(custom, tmp_path, f"{PREFIX}nobody-here")


@pytest.mark.skipif(not is_root(), reason="needs root to create an OS account")
def test_production_homes_belong_to_their_account(settings: Settings, examples: Path) -> None:
    root = public_tempdir("gai-provision-")
    name = f"{PREFIX}kim"
    try:
        with os_accounts({name: []}, [], root / "homes") as uids:
            custom = load_settings(
                home=settings.home, hub={"spawner": "local-users", "users_dir": root / "users"}
            )
            home = resolve_home(custom, root / "users", name)
            assert home.path == root / "users" / name and home.uid == uids[name]
            provision_home(home, examples)
            for path in [home.path, *home.path.rglob("*")]:
                assert path.stat().st_uid == uids[name], path
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
