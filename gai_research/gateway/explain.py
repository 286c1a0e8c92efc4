"""``gai gateway explain``: which rules a study matches and why, without sending anything.

A study is given as a folder of DICOM files (read header by header, grouped by study)
or as a study the gateway has received (by its study key ``GS...`` or its Study
Instance UID, looked up in the gateway database). The text names series by their
position and number, never by UID, and studies by their study key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gai_research.gateway.errors import GatewayError
from gai_research.gateway.facts import HEADER_TAGS, InstanceFacts, instance_facts, series_facts
from gai_research.gateway.identity import study_key
from gai_research.gateway.jobs import GatewayDB
from gai_research.gateway.match import Routing, route
from gai_research.gateway.rules import RuleSet

__all__ = ["StudyExplanation", "explain_db", "explain_paths", "format_explanation"]


@dataclass(frozen=True)
class StudyExplanation:
    key: str
    site: str | None
    routing: Routing
    n_instances: int
    unreadable: int = 0
    state: str | None = None  # the gateway's state of the study, when it came from the database


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            for root, _dirs, names in os.walk(path):
                out += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
        elif path.is_file():
            out.append(path)
        else:
            raise GatewayError(f"{path} does not exist", hint="give a folder of DICOM files")
    return out


def explain_paths(
    paths: Iterable[str | Path], rules: RuleSet, secret: bytes, *, site: str | None = None
) -> list[StudyExplanation]:
    """The routing of every study found in the files or folders ``paths``."""
    from pydicom import dcmread

    by_study: dict[str, list[InstanceFacts]] = {}
    unreadable = 0
    for path in _files(Path(p) for p in paths):
        try:
            header = dcmread(
                path, stop_before_pixels=True, specific_tags=["SpecificCharacterSet", *HEADER_TAGS]
            )
            facts = instance_facts(header)
        except Exception:
            unreadable += 1
            continue
        if not facts.study_uid or not facts.sop_uid:
            unreadable += 1
            continue
        by_study.setdefault(facts.study_uid, []).append(facts)
    if not by_study:
        raise GatewayError(
            "no DICOM instance found there",
            hint="give a folder with a study's DICOM files, or a study the gateway received",
        )
    out = []
    for uid, items in by_study.items():
        series = series_facts(items)
        out.append(
            StudyExplanation(
                key=study_key(secret, uid),
                site=site,
                routing=route(rules, series, site),
                n_instances=len(items),
                unreadable=unreadable,
            )
        )
    return out


def explain_db(db: GatewayDB, target: str, rules: RuleSet, secret: bytes) -> StudyExplanation:
    """The routing of a study the gateway has received (by study key or Study Instance UID)."""
    study = db.study(target) if target.startswith("GS") else None
    if study is None:
        study = db.study(study_key(secret, target)) or db.study_by_uid(target)
    if study is None:
        raise GatewayError(
            "the gateway has not received that study",
            hint="give a study key from `gai gateway status`, a Study Instance UID, or a folder",
        )
    series = series_facts(db.instance_facts(study.key))
    return StudyExplanation(
        key=study.key,
        site=study.site,
        routing=route(rules, series, study.site),
        n_instances=study.n_instances + study.n_late,
        state=study.state,
    )


def format_explanation(explanation: StudyExplanation, *, verbose: bool = False) -> str:
    """The explanation as text: per rule MATCH or not with the reason, per series the checks."""
    routing = explanation.routing
    lines = []
    head = f"study {explanation.key}"
    head += f" ({explanation.site or 'site unknown'}, {explanation.n_instances} instance(s)"
    head += f", gateway state {explanation.state})" if explanation.state else ")"
    lines.append(head)
    if explanation.unreadable:
        lines.append(f"  ({explanation.unreadable} file(s) skipped: not DICOM or without UIDs)")
    series = routing.verdicts[0].series if routing.verdicts else ()
    for verdict in series:
        s = verdict.series
        size = f"{s.rows}x{s.columns}" if s.rows and s.columns else "no pixels"
        views = f", views {'/'.join(s.views)}" if s.views else ""
        lines.append(
            f"  {s.label}: {s.body_part or '-'} | {s.study_description or '-'} | "
            f"{s.series_description or '-'} | {s.manufacturer or '-'} | "
            f"{s.instances} image(s) {size}{views}"
        )
    for verdict in routing.verdicts:
        rule = verdict.rule
        if verdict.applies:
            models = ", ".join(t.name for t in rule.models)
            lines.append(f"  MATCH {rule.name}: {verdict.reason} -> {models}")
        else:
            lines.append(f"  no    {rule.name}: {verdict.reason}")
        for series_verdict in verdict.series:
            if series_verdict.matched and not verbose:
                continue
            shown = series_verdict.checks if verbose else series_verdict.failed()
            for check in shown:
                mark = "ok  " if check.passed else "FAIL"
                indent = "  " * check.depth
                lines.append(
                    f"        {series_verdict.series.label}: {mark} {indent}{check.what}: "
                    f"{check.detail}"
                )
    if routing.routes:
        for r in routing.routes:
            how = "pseudonymized" if r.pseudonymize else "as is (in-hospital)"
            lines.append(
                f"  -> {r.model}: {len(r.series_uids)} series, {how} (rules: {', '.join(r.rules)})"
            )
    else:
        lines.append("  -> no rule matched: the gateway would record the study as no-match")
    return "\n".join(lines)
