"""Telling the simulated site PACS (Orthanc) about the gateway, and having them push to it.

A hospital's PACS administrator declares the gateway as a DICOM destination (AE title,
host, port) and routes new studies to it. For the simulated site PACS this module does
the same through Orthanc's REST API: ``PUT /modalities/<name>`` declares the gateway
(allowed to store, so results can come back), and ``POST /modalities/<name>/store``
makes Orthanc send a study to it, as an auto-routing rule would. Only for the loopback
PACS of ``gai pacs``; never used against a real hospital system.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable

from gai_research.errors import ServiceError
from gai_research.sites import Site

__all__ = ["MODALITY_NAME", "link_site_pacs", "orthanc_study_id", "push_study"]

MODALITY_NAME = "gai-gateway"


def _call(method: str, url: str, body: object | None = None, timeout: float = 120.0) -> object:
    if body is None:
        data = None
    elif isinstance(body, str):  # Orthanc's /tools/lookup takes the bare value
        data = body.encode("utf-8")
    else:
        data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header(
            "Content-Type", "text/plain" if isinstance(body, str) else "application/json"
        )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            text = answer.read()
    except urllib.error.HTTPError as exc:
        raise ServiceError(
            f"the site PACS answered HTTP {exc.code} to {method} {url.split('/', 3)[-1]}",
            hint="is it the simulated Orthanc of `gai pacs up`? see its log under HOME/pacs",
        ) from None
    except OSError as exc:
        raise ServiceError(
            f"cannot reach the site PACS at {url.split('/')[2]}: {exc}",
            hint="start the simulated site PACS: `gai pacs up`",
        ) from None
    return json.loads(text) if text.strip() else None


def _base(settings, site: Site | str) -> str:
    pacs = settings.site(site).pacs
    return f"http://{pacs.host}:{pacs.http_port}"


def link_site_pacs(
    settings,
    *,
    ae_title: str,
    port: int,
    host: str = "127.0.0.1",
    sites: Iterable[Site | str] | None = None,
    name: str = MODALITY_NAME,
    skip_unreachable: bool = False,
) -> list[Site]:
    """Declare the gateway in each simulated site PACS (idempotent); the sites done.

    With ``skip_unreachable`` a PACS that is not running is left out instead of raising.
    """
    chosen = [Site.parse(s) for s in (sites if sites is not None else settings.sites)]
    body = {
        "AET": ae_title,
        "Host": host,
        "Port": int(port),
        "AllowEcho": True,
        "AllowStore": True,
        "AllowFind": False,
        "AllowGet": False,
        "AllowMove": False,
    }
    done = []
    for site in chosen:
        try:
            _call("PUT", f"{_base(settings, site)}/modalities/{name}", body)
        except ServiceError:
            if not skip_unreachable:
                raise
            continue
        done.append(site)
    return done


def orthanc_study_id(settings, site: Site | str, study_uid: str) -> str:
    """Orthanc's own id of a study, looked up by its Study Instance UID."""
    found = _call("POST", f"{_base(settings, site)}/tools/lookup", study_uid)
    for item in found or []:
        if item.get("Type") == "Study":
            return str(item["ID"])
    raise ServiceError(
        f"the {Site.parse(site).value} PACS does not hold that study",
        hint="store it there first (`gai pacs seed`)",
    )


def push_study(
    settings, site: Site | str, study_uid: str, *, name: str = MODALITY_NAME, timeout: float = 300.0
) -> None:
    """Have a site PACS send one study to the gateway (synchronously, one association)."""
    study = orthanc_study_id(settings, site, study_uid)
    _call(
        "POST",
        f"{_base(settings, site)}/modalities/{name}/store",
        {"Resources": [study], "Synchronous": True},
        timeout=timeout,
    )
