"""Evaluating routing rules on a study's series, with the reasons kept for ``explain``.

Pure functions of a :class:`~gai_research.gateway.rules.RuleSet` and
:class:`~gai_research.gateway.facts.SeriesFacts`: the receiver routes with them when a
study is complete, and ``gai gateway explain`` prints the same verdicts without sending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gai_research.gateway.facts import SeriesFacts
from gai_research.gateway.rules import RANGE_CHECKS, Condition, Rule, RuleSet
from gai_research.sites import Site

__all__ = ["Check", "Route", "Routing", "RuleVerdict", "SeriesVerdict", "evaluate", "route"]


@dataclass(frozen=True)
class Check:
    """One check of a condition on one series: what, whether it held, and why."""

    what: str
    passed: bool
    detail: str
    depth: int = 0


@dataclass(frozen=True)
class SeriesVerdict:
    series: SeriesFacts
    matched: bool
    checks: tuple[Check, ...]

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed and c.depth == 0]


@dataclass(frozen=True)
class RuleVerdict:
    """Whether a rule applies to a study, the series it selects and why (not)."""

    rule: Rule
    applies: bool
    reason: str
    series: tuple[SeriesVerdict, ...]
    selected: tuple[SeriesFacts, ...]


@dataclass(frozen=True)
class Route:
    """One model a study goes to: the series it gets, the rules that sent it, pseudonymized?"""

    model: str
    rules: tuple[str, ...]
    series_uids: tuple[str, ...]
    pseudonymize: bool


@dataclass(frozen=True)
class Routing:
    verdicts: tuple[RuleVerdict, ...]
    routes: tuple[Route, ...]

    @property
    def matched(self) -> bool:
        return bool(self.routes)


def _values(value: object) -> str:
    return repr(value) if value not in ("", None, ()) else "(empty)"


def evaluate(condition: Condition, facts: SeriesFacts, depth: int = 0) -> tuple[bool, list[Check]]:
    """Whether ``condition`` holds for the series, and every check made (for explanations)."""
    checks: list[Check] = []
    if condition.modality is not None:
        ok = facts.modality.upper() in condition.modality
        checks.append(
            Check("modality", ok, f"{_values(facts.modality)} in {condition.modality}", depth)
        )
    if condition.sop_class is not None:
        ok = any(uid in condition.sop_class for uid in facts.sop_classes)
        names = [_sop_name(uid) for uid in facts.sop_classes]
        wanted = [_sop_name(uid) for uid in condition.sop_class]
        checks.append(Check("sop_class", ok, f"{names} in {wanted}", depth))
    for name, pattern in condition.patterns.items():
        value = _text_of(facts, name)
        ok = (
            any(pattern.search(v) for v in value)
            if isinstance(value, tuple)
            else bool(pattern.search(value))
        )
        checks.append(Check(name, ok, f"{_values(value)} ~ /{pattern.pattern}/", depth))
    if condition.contrast is not None:
        ok = facts.contrast == condition.contrast
        checks.append(
            Check(
                "contrast", ok, f"contrast agent {'present' if facts.contrast else 'absent'}", depth
            )
        )
    for name in RANGE_CHECKS:
        wanted = getattr(condition, name)
        if wanted is None:
            continue
        value = getattr(facts, name)
        ok = value is not None and value in wanted
        checks.append(Check(name, ok, f"{value} in {wanted}", depth))
    for sub_name, subs in (("all_of", condition.all_of), ("any_of", condition.any_of)):
        if subs is None:
            continue
        results = [evaluate(sub, facts, depth + 1) for sub in subs]
        ok = all(r[0] for r in results) if sub_name == "all_of" else any(r[0] for r in results)
        held = sum(r[0] for r in results)
        checks.append(Check(sub_name, ok, f"{held} of {len(subs)} held", depth))
        for _, inner in results:
            checks.extend(inner)
    if condition.not_ is not None:
        inner_ok, inner = evaluate(condition.not_, facts, depth + 1)
        checks.append(
            Check(
                "not",
                not inner_ok,
                "inner condition " + ("held" if inner_ok else "did not hold"),
                depth,
            )
        )
        checks.extend(inner)
    return all(c.passed for c in checks if c.depth == depth), checks


def _text_of(facts: SeriesFacts, name: str) -> str | tuple[str, ...]:
    if name == "view":
        return facts.views
    return getattr(facts, name) or ""


def _sop_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name != uid else uid


def _verdict(rule: Rule, series: Sequence[SeriesFacts], site: Site | None) -> RuleVerdict:
    verdicts = []
    for facts in series:
        ok, checks = evaluate(rule.match, facts)
        verdicts.append(SeriesVerdict(facts, ok, tuple(checks)))
    chosen = tuple(v.series for v in verdicts if v.matched)
    if not rule.enabled:
        return RuleVerdict(rule, False, "rule disabled", tuple(verdicts), ())
    if rule.sites is not None and (site is None or site not in rule.sites):
        where = site.value if site is not None else "unknown"
        wanted = ", ".join(s.value for s in rule.sites)
        return RuleVerdict(rule, False, f"site {where} not in [{wanted}]", tuple(verdicts), ())
    if not chosen:
        return RuleVerdict(rule, False, "no series matched", tuple(verdicts), ())
    need = rule.study
    problems = []
    if len(chosen) < need.min_series:
        problems.append(f"{len(chosen)} matched series, need {need.min_series}")
    images = sum(s.instances for s in chosen)
    if images < need.min_instances:
        problems.append(f"{images} matched images, need {need.min_instances}")
    views = {v for s in chosen for v in s.views}
    missing_views = [v for v in need.views if v not in views]
    if missing_views:
        problems.append(f"views {missing_views} missing")
    sides = {v for s in chosen for v in s.lateralities}
    missing_sides = [v for v in need.lateralities if v not in sides]
    if missing_sides:
        problems.append(f"lateralities {missing_sides} missing")
    if problems:
        return RuleVerdict(rule, False, "; ".join(problems), tuple(verdicts), ())
    selected = tuple(series) if rule.send == "all" else chosen
    count = f"{len(chosen)} series, {images} images matched"
    return RuleVerdict(rule, True, count, tuple(verdicts), selected)


def route(ruleset: RuleSet, series: Sequence[SeriesFacts], site: Site | str | None) -> Routing:
    """Every rule's verdict on the study, and the models it goes to (one route per model)."""
    site = Site.parse(site) if site is not None else None
    verdicts = tuple(_verdict(rule, series, site) for rule in ruleset.rules)
    routes: dict[str, dict] = {}
    for verdict in verdicts:
        if not verdict.applies:
            continue
        for target in verdict.rule.models:
            pseudo = target.pseudonymize
            if pseudo is None:
                pseudo = ruleset.policy(target.name).pseudonymize
            entry = routes.setdefault(
                target.name, {"rules": [], "series": {}, "pseudonymize": False}
            )
            entry["rules"].append(verdict.rule.name)
            entry["series"].update({s.series_uid: None for s in verdict.selected})
            entry["pseudonymize"] = entry["pseudonymize"] or pseudo  # the safer choice wins
    return Routing(
        verdicts=verdicts,
        routes=tuple(
            Route(model, tuple(e["rules"]), tuple(e["series"]), e["pseudonymize"])
            for model, e in routes.items()
        ),
    )
