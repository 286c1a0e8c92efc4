"""``gai config`` and ``gai init``: the effective settings and the platform home."""

from __future__ import annotations

import argparse
import json

from gai_research.cli._common import settings_from


def register(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser(
        "config",
        help="print the effective settings (paths, URIs, sites; secrets masked)",
        description="Print the effective settings: every path and URI, the three sites' PACS, "
        "and where each value came from (GAI_* variables over gai.toml over defaults). "
        "The key itself is never printed, only its fingerprint.",
    )
    config.add_argument("--json", action="store_true", help="machine-readable output")
    config.set_defaults(handler=run_config)

    init = sub.add_parser(
        "init",
        help="create the platform home (GAI_HOME) and a fresh pseudonymization key",
        description="Create the platform home: store/, catalog/, mlflow/, reports/ (shared) and "
        "secrets/, vault/, quarantine/, spool/, pacs/, audit/ (restricted, 0700), and a random "
        "64-hex-character key (0600) if there is none. Safe to run again: an existing key is "
        "never overwritten.",
    )
    init.set_defaults(handler=run_init)


def _hub_config(settings) -> dict:
    """The hub's settings; a database URI's password is masked like the MLflow URI's."""
    hub = settings.hub.model_dump(mode="json")
    if hub.get("mlflow_backend_store"):
        hub["mlflow_backend_store"] = _mask_uri(hub["mlflow_backend_store"])
    return hub


def effective_config(settings) -> dict:
    """The settings as plain data, with the key reduced to its fingerprint."""
    from gai_research.errors import HomeError
    from gai_research.home import key_fingerprint, read_key

    try:
        key_state = f"fingerprint {key_fingerprint(read_key(settings.key_path))}"
    except HomeError as exc:
        key_state = f"unusable: {exc.message}"
    return {
        "config_file": str(settings.config_file) if settings.config_file else None,
        "home": str(settings.home),
        "paths": {
            name: str(getattr(settings, f"{name}_dir"))
            for name in (
                "store",
                "catalog",
                "secrets",
                "vault",
                "quarantine",
                "spool",
                "audit",
                "pacs",
                "mlflow",
                "reports",
            )
        },
        "key_file": str(settings.key_path),
        "key": key_state,
        "mlflow_uri": _mask_uri(settings.tracking_uri),
        "gateway": settings.gateway.model_dump(mode="json"),
        "hub": _hub_config(settings),
        "dask_address": settings.dask_address,
        "platform": {
            "ae_title": settings.platform_ae_title,
            "dicom_port": settings.platform_dicom_port,
        },
        "sites": {
            site.value: {
                "name_en": cfg.name_en,
                "name_ko": cfg.name_ko,
                "base_center": cfg.base_center,
                "pacs": cfg.pacs.model_dump(),
            }
            for site, cfg in settings.sites.items()
        },
    }


def _mask_uri(uri: str) -> str:
    """Hide a password in a URI such as postgresql://user:secret@host/db."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def run_config(args: argparse.Namespace) -> int:
    data = effective_config(settings_from(args))
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    print(f"config file   {data['config_file'] or '(none: GAI_* variables and defaults)'}")
    print(f"home          {data['home']}")
    for name, path in data["paths"].items():
        print(f"  {name:<11} {path}")
    print(f"key file      {data['key_file']} ({data['key']})")
    print(f"mlflow uri    {data['mlflow_uri']}")
    print(f"platform AE   {data['platform']['ae_title']} port {data['platform']['dicom_port']}")
    for name, site in data["sites"].items():
        pacs = site["pacs"]
        base = " (base center)" if site["base_center"] else ""
        print(
            f"site {name:<8} {site['name_ko']}{base}: PACS {pacs['ae_title']}@{pacs['host']} "
            f"DICOM {pacs['dicom_port']} HTTP {pacs['http_port']}"
        )
    gateway, hub = data["gateway"], data["hub"]
    print(f"gateway       {gateway['ae_title']}@{gateway['host']} DICOM {gateway['dicom_port']}")
    print(f"hub           http://{hub['ip']}:{hub['port']}/ ({hub['spawner']} spawner)")
    print(f"evaluation    {data['dask_address'] or 'local process pool'}")
    return 0


def run_init(args: argparse.Namespace) -> int:
    from gai_research.home import init_home

    result = init_home(settings_from(args))
    print(f"platform home {result.home}")
    for path in result.created:
        print(f"  created   {path}")
    for path in result.tightened:
        print(f"  tightened {path} to 0700")
    if not result.created and not result.tightened:
        print("  layout already complete")
    state = "created" if result.key_created else "kept (existing keys are never overwritten)"
    print(f"key {result.key_path}: {state}, fingerprint {result.key_fingerprint}")
    return 0
