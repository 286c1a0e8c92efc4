"""Patient-level train/validation/test splits, stratified by label and site, seeded.

Every patient lands in exactly one split, so no patient's images are in two. Each
patient has one stratum (site, class): the sites of their studies joined (a patient
seen at two hospitals is a stratum of their own) and their class (1 if any of their
studies is positive for the task, else 0; none without a task). Patients are shuffled
within each stratum by a seeded generator, then dealt one by one to the split that is
furthest behind its target, counting both the stratum and the whole set, so every
stratum and the total follow the fractions as closely as whole patients allow. The
same patients, strata, fractions and seed always give the same splits.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence

from gai_research.data.errors import ExportError

__all__ = ["SPLIT_NAMES", "assign_splits", "check_fractions"]

SPLIT_NAMES = ("training", "validation", "test")  # the MONAI decathlon datalist keys


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Three non-negative fractions (train, validation, test) that sum to 1."""
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ExportError(
            f"splits must be three numbers, not {fractions!r}", hint="e.g. splits=(0.7, 0.15, 0.15)"
        ) from None
    if len(values) != 3 or any(not math.isfinite(v) or v < 0 for v in values):
        raise ExportError(
            f"splits must be three fractions >= 0 (train, validation, test), not {fractions!r}",
            hint="e.g. splits=(0.7, 0.15, 0.15)",
        )
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6) or values[0] == 0:
        raise ExportError(
            f"split fractions must sum to 1 with a training share > 0 (got {sum(values):g})",
            hint="e.g. splits=(0.7, 0.15, 0.15) or (0.8, 0.2, 0)",
        )
    return values  # type: ignore[return-value]


def _rng(seed: int, stratum: Hashable) -> random.Random:
    digest = hashlib.sha256(f"{int(seed)}\0{stratum!r}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def assign_splits(
    strata: Mapping[str, Hashable],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> dict[str, str]:
    """Patient -> split name (``training``/``validation``/``test``).

    ``strata`` maps each patient pseudonym to its stratum (any hashable: site and class).
    Splits with a share > 0 get at least one patient when there are enough patients.
    """
    fractions = check_fractions(fractions)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ExportError(f"seed must be a whole number, not {seed!r}", hint="e.g. seed=0")
    groups: dict[Hashable, list[str]] = defaultdict(list)
    for patient, stratum in strata.items():
        groups[stratum].append(patient)
    total = [0, 0, 0]
    placed = 0
    result: dict[str, str] = {}
    for stratum in sorted(groups, key=repr):
        patients = sorted(groups[stratum])
        _rng(seed, stratum).shuffle(patients)
        local = [0, 0, 0]
        for k, patient in enumerate(patients):
            # how far each split is behind its target, in this stratum and overall
            need = [
                fractions[s] * (k + 1) - local[s] + fractions[s] * (placed + 1) - total[s]
                for s in range(3)
            ]
            choice = max(range(3), key=lambda s: (fractions[s] > 0, need[s], -s))
            local[choice] += 1
            total[choice] += 1
            placed += 1
            result[patient] = SPLIT_NAMES[choice]
    _fill_empty(result, strata, fractions, total)
    return result


def _fill_empty(
    result: dict[str, str],
    strata: Mapping[str, Hashable],
    fractions: Sequence[float],
    total: list[int],
) -> None:
    """Give an empty split with a share > 0 one patient from the largest split, if it can spare one."""
    for s, name in enumerate(SPLIT_NAMES):
        if fractions[s] == 0 or total[s] > 0:
            continue
        donor = max(range(3), key=lambda d: (total[d], -d))
        if total[donor] < 2:
            continue
        # move the donor's patient from its most common stratum, last in sorted order
        sizes: dict[Hashable, int] = defaultdict(int)
        for patient, split in result.items():
            if split == SPLIT_NAMES[donor]:
                sizes[strata[patient]] += 1
        stratum = max(sizes, key=lambda key: (sizes[key], repr(key)))
        patient = max(
            p for p, split in result.items() if split == SPLIT_NAMES[donor] and strata[p] == stratum
        )
        result[patient] = name
        total[donor] -= 1
        total[s] += 1
