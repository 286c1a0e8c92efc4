"""Settings: defaults, precedence (kwargs > env > gai.toml > defaults), validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gai_research.config import Site, load_settings
from gai_research.errors import ConfigError


def test_defaults_put_everything_under_var(
    gai_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GAI_HOME")
    settings = load_settings()
    assert settings.home == tmp_path / "var"
    assert settings.key_path == tmp_path / "var" / "secrets" / "pseudonym.key"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'var' / 'mlflow' / 'mlflow.db'}"
    assert [s.value for s in settings.sites] == ["SUWON", "ANSEONG", "ICHEON"]
    assert settings.site("anseong").base_center
    assert not settings.site(Site.SUWON).base_center


def test_environment_overrides_one_site_field(
    gai_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAI_SITES__SUWON__PACS__DICOM_PORT", "4242")
    settings = load_settings()
    assert settings.home == gai_home
    assert settings.site("SUWON").pacs.dicom_port == 4242
    assert settings.site("SUWON").pacs.ae_title == "SUWON_PACS"  # rest of the site kept


def test_toml_file_below_environment(
    gai_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gai.toml").write_text(
        'mlflow_uri = "http://127.0.0.1:5000"\nhome = "/elsewhere"\n[sites.icheon.pacs]\nae_title = "ICH_PACS"\n',
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.config_file == tmp_path / "gai.toml"
    assert settings.home == gai_home  # GAI_HOME beats the file
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.site("ICHEON").pacs.ae_title == "ICH_PACS"


def test_keyword_arguments_beat_environment(gai_home: Path, tmp_path: Path) -> None:
    assert load_settings(home=tmp_path / "other").home == tmp_path / "other"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sites": {"BUSAN": {}}}, "unknown site 'BUSAN'"),
        ({"sites": {"SUWON": {"pacs": {"dicom_port": 11202}}}}, "port 11202 is used twice"),
        ({"sites": {"SUWON": {"pacs": {"ae_title": "A" * 17}}}}, "AE title"),
        ({"platform_dicom_port": 70000}, "platform_dicom_port"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_invalid_settings_are_one_clear_error(
    gai_home: Path, overrides: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**overrides)


def test_missing_config_file_is_an_error(gai_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAI_CONFIG", "/no/such/gai.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_settings()


@pytest.mark.parametrize("spelling", ["suwon", "SUWON", " Suwon ", Site.SUWON])
def test_site_parse_accepts_any_spelling(spelling: str | Site) -> None:
    assert Site.parse(spelling) is Site.SUWON
