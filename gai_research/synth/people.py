"""The cohort plan: who the patients are, which centers they visit, which studies they get.

The plan is made before any pixel is drawn. Its first part is a coverage design:
every (site, task) gets a positive and a negative study as soon as the site has two
eligible visits (nine patients are enough), handed to the visits with the fewest
studies so far. Visits left without a study then get one random eligible study.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from gai_research.synth.korean import (
    KoreanName,
    make_rrn,
    random_address,
    random_name,
    random_phone,
)
from gai_research.synth.seeds import derive_rng
from gai_research.synth.sites import SITE_PROFILES
from gai_research.synth.types import SITES, TASKS

__all__ = ["PERIOD", "Person", "PlannedStudy", "plan_cohort"]

#: first and last day of the demonstration's image collection
PERIOD = (dt.date(2026, 5, 1), dt.date(2026, 11, 20))
MULTI_SITE_FRACTION = 0.15
UTF8_FRACTION = 0.2
POSITIVE_FRACTION = 0.4  # of the studies beyond the coverage design

# task -> (youngest, oldest) age at the study
AGE_RANGE = {
    "lung_nodule_ct": (45, 85),
    "lung_nodule_dx": (40, 85),
    "breast_mg": (40, 74),
    "dementia_mr": (62, 90),
    "stroke_ct": (45, 90),
}


@dataclass(frozen=True)
class Person:
    """A synthetic patient; the same person at every center."""

    index: int
    sex: str
    birth_date: dt.date
    rrn: str
    name: KoreanName
    phone: str
    address: str
    height_m: float
    weight_kg: float


@dataclass(frozen=True)
class PlannedStudy:
    """One study to generate: who, where, what, when, and the truth it must show."""

    person: Person
    site: str
    mrn: str
    utf8: bool
    task: str
    positive: bool
    study_date: dt.date
    study_time: dt.time
    accession: str

    @property
    def key(self) -> tuple[object, ...]:
        """What names this study among all others of the cohort (for seeds and UIDs)."""
        return (self.person.index, self.site, self.task)

    def age_at_study(self) -> int:
        born, day = self.person.birth_date, self.study_date
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass
class _Visit:
    patient: int
    site: str
    sex: str
    order: float
    tasks: dict[str, bool] = field(default_factory=dict)


def _eligible(sex: str, task: str) -> bool:
    return not (task == "breast_mg" and sex != "F")


def _visits(patients: int, seed: int) -> list[_Visit]:
    rng = derive_rng(seed, "plan", patients, "visits")
    offset = seed % len(SITES)
    visits = []
    for i in range(patients):
        site = SITES[(i + offset) % len(SITES)]
        # alternate sexes within each site, starting with a woman
        sex = "F" if (i // len(SITES)) % 2 == 0 else "M"
        visits.append(_Visit(i, site, sex, float(rng.random())))
    n_multi = max(1, round(MULTI_SITE_FRACTION * patients)) if patients >= 3 else 0
    for i in sorted(int(j) for j in rng.permutation(patients)[:n_multi]):
        home = visits[i].site
        others = [s for s in SITES if s != home]
        visits.append(
            _Visit(i, others[int(rng.integers(len(others)))], visits[i].sex, float(rng.random()))
        )
    return visits


def _assign_tasks(visits: list[_Visit], patients: int, seed: int) -> None:
    rng = derive_rng(seed, "plan", patients, "tasks")
    cells = [(site, task, pos) for site in SITES for task in TASKS for pos in (True, False)]
    for k in rng.permutation(len(cells)):
        site, task, positive = cells[int(k)]
        candidates = [
            v for v in visits if v.site == site and _eligible(v.sex, task) and task not in v.tasks
        ]
        if candidates:
            best = min(candidates, key=lambda v: (len(v.tasks), v.order))
            best.tasks[task] = positive
    for visit in visits:
        if not visit.tasks:
            tasks = [t for t in TASKS if _eligible(visit.sex, t)]
            task = tasks[int(rng.integers(len(tasks)))]
            visit.tasks[task] = bool(rng.random() < POSITIVE_FRACTION)


def _person(index: int, sex: str, tasks: set[str], home: str, seed: int) -> Person:
    rng = derive_rng(seed, "person", index)
    low = max(AGE_RANGE[t][0] for t in tasks)
    high = min(AGE_RANGE[t][1] for t in tasks)
    age = int(rng.integers(low, max(low, high) + 1))
    birth = PERIOD[0] - dt.timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    office = int(rng.integers(1600, 2600))  # Gyeonggi registration offices
    height = float(rng.normal(1.70 if sex == "M" else 1.57, 0.06))
    bmi = float(rng.normal(24.0, 3.0))
    return Person(
        index=index,
        sex=sex,
        birth_date=birth,
        rrn=make_rrn(birth, sex, office, index),
        name=random_name(rng, sex),
        phone=random_phone(rng),
        address=random_address(rng, home),
        height_m=round(height, 2),
        weight_kg=round(bmi * height * height, 1),
    )


def _random_day(rng: np.random.Generator, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=int(rng.integers(0, (last - first).days + 1)))


def plan_cohort(patients: int, seed: int) -> tuple[PlannedStudy, ...]:
    """Every study of the cohort, sorted by site, date and time."""
    visits = _visits(patients, seed)
    _assign_tasks(visits, patients, seed)
    tasks_of: dict[int, set[str]] = {}
    home_of: dict[int, str] = {}
    for v in visits:
        tasks_of.setdefault(v.patient, set()).update(v.tasks)
        home_of.setdefault(v.patient, v.site)
    people = {i: _person(i, visits[i].sex, tasks_of[i], home_of[i], seed) for i in range(patients)}

    # a fixed share of visits (at least one once there are two) is registered in UTF-8
    n_utf8 = max(1, round(UTF8_FRACTION * len(visits))) if len(visits) >= 2 else 0
    order = derive_rng(seed, "plan", patients, "charset").permutation(len(visits))
    utf8_visits = {int(i) for i in order[:n_utf8]}
    draft = []
    for number, v in enumerate(visits):
        rng = derive_rng(seed, "visit", v.patient, v.site)
        day = _random_day(rng, *PERIOD)
        utf8 = number in utf8_visits
        minutes = int(rng.integers(8 * 60, 16 * 60))
        for task in TASKS:  # several studies of one visit follow each other
            if task in v.tasks:
                when = dt.time(minutes // 60, minutes % 60, int(rng.integers(0, 60)))
                draft.append((v, task, day, when, utf8))
                minutes += int(rng.integers(15, 45))
    draft.sort(key=lambda d: (SITES.index(d[0].site), d[2], d[3], d[0].patient))

    studies = []
    sequence = dict.fromkeys(SITES, 0)
    for v, task, day, when, utf8 in draft:
        profile = SITE_PROFILES[v.site]
        sequence[v.site] += 1
        studies.append(
            PlannedStudy(
                person=people[v.patient],
                site=v.site,
                mrn=profile.mrn(v.patient, seed),
                utf8=utf8,
                task=task,
                positive=v.tasks[task],
                study_date=day,
                study_time=when,
                accession=profile.accession(sequence[v.site] + 1000 * (seed % 7), day),
            )
        )
    return tuple(studies)
