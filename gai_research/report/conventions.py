"""The MLflow conventions the report reads, and what it shows of each metric.

The evaluation engine logs one child run per model (and site) under a parent run per
evaluation, in the experiment ``gai-<task>``; the gateway logs ``gai.role=operations``
runs in the same experiments. The tag and metric names below are that contract; the
report never guesses beyond it, and it shows a metric only as it was logged.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AGREEMENT_METRICS",
    "DETAIL_TABLES",
    "EXPERIMENT_PREFIX",
    "METRICS",
    "OPERATIONS_METRICS",
    "ORIGINS",
    "SITES",
    "SUMMARY_COLUMNS",
    "TASKS",
    "MetricSpec",
    "metric_spec",
]

EXPERIMENT_PREFIX = "gai-"

# disease task -> evaluation kind (gai_research.models.types.TaskKind), in report order
TASKS: dict[str, str] = {
    "lung_nodule_ct": "detection",
    "lung_nodule_dx": "classification",
    "breast_mg": "classification",
    "dementia_mr": "volumetry",
    "stroke_ct": "triage",
}
SITES: tuple[str, ...] = ("ALL", "SUWON", "ANSEONG", "ICHEON")
ORIGINS: tuple[str, ...] = ("vendor", "simulator", "baseline")

# tags
TAG_ROLE = "gai.role"
TAG_TASK = "gai.task"
TAG_KIND = "gai.kind"
TAG_MODEL = "gai.model"
TAG_MODEL_VERSION = "gai.model_version"
TAG_VENDOR = "gai.vendor"
TAG_ORIGIN = "gai.origin"
TAG_SITE = "gai.site"
TAG_PROTOCOL = "gai.protocol"
TAG_PROTOCOL_HASH = "gai.protocol_hash"
TAG_SNAPSHOT = "gai.snapshot"
TAG_COHORT_HASH = "gai.cohort_hash"
TAG_ERROR = "gai.error"
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"

ROLE_EVALUATION = "evaluation"
ROLE_MODEL = "model"
ROLE_OPERATIONS = "operations"


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is shown: its label, number style and which way is better.

    ``better`` is +1 (higher is better), -1 (lower is better) or 0 (no ranking); only
    metrics with a direction and a logged CI can be flagged best or worst.
    """

    name: str
    label: str  # i18n key
    style: str  # a style of gai_research.report.fmt
    better: int = 0


def _specs(*items: tuple[str, str, int]) -> dict[str, MetricSpec]:
    return {name: MetricSpec(name, f"m.{name}", style, better) for name, style, better in items}


METRICS: dict[str, MetricSpec] = _specs(
    ("n_cases", "count", 0),
    ("n_positive", "count", 0),
    ("prevalence", "prop", 0),
    ("n_failed", "count", 0),
    ("n_timeout", "count", 0),
    ("sensitivity", "prop", 1),
    ("specificity", "prop", 1),
    ("ppv", "prop", 1),
    ("npv", "prop", 1),
    ("accuracy", "prop", 1),
    ("auc", "prop", 1),
    ("cpm", "prop", 1),
    ("recall_rate", "prop", 0),
    ("cdr_per_1000", "per1000", 1),
    ("ppv1", "prop", 1),
    ("icc", "prop", 1),
    ("dice", "prop", 1),
    ("mae_ml", "ml", -1),
    ("ba_bias_ml", "ml", 0),
    ("ba_loa_low_ml", "ml", 0),
    ("ba_loa_high_ml", "ml", 0),
    ("latency_median_s", "seconds", 0),
    ("latency_p25_s", "seconds", 0),
    ("latency_p75_s", "seconds", 0),
    ("latency_p95_s", "seconds", 0),
    ("latency_max_s", "seconds", 0),
    # also logged by the evaluation engine
    ("n_negative", "count", 0),
    ("n_missing", "count", 0),
    ("n_excluded", "count", 0),
    ("tp", "count", 0),
    ("fp", "count", 0),
    ("tn", "count", 0),
    ("fn", "count", 0),
    ("threshold", "plain", 0),
    ("n_nodules", "count", 0),
    ("n_nodules_detected", "count", 0),
    ("n_candidates", "count", 0),
    ("n_false_positives", "count", 0),
    ("n_pairs", "count", 0),
    ("latency_n", "count", 0),
    ("latency_mean_s", "seconds", 0),
    # operations (gateway)
    ("ttr_median_s", "seconds", 0),
    ("ttr_p95_s", "seconds", 0),
    ("gateway_overhead_median_s", "seconds", 0),
    ("throughput_per_h", "rate", 0),
    ("n_studies", "count", 0),
)


VOLUME_PREFIX = "vol."
OPERATING_FAMILIES = ("sens_at_spec_", "spec_at_sens_")
FROC_FAMILY = "froc_sens_fp_"
# what an operating point logs beside its estimate: the other measure and the threshold
OPERATING_COMPANIONS = ("_specificity", "_sensitivity", "_threshold")


def volume_parts(name: str) -> tuple[str, str] | None:
    """``vol.<structure>.<metric>`` -> (structure, metric), else None."""
    if not name.startswith(VOLUME_PREFIX):
        return None
    structure, _, metric = name[len(VOLUME_PREFIX) :].rpartition(".")
    return (structure, metric) if structure and metric else None


def family_target(name: str, prefix: str) -> float | None:
    """The number after a family prefix (``froc_sens_fp_0.5`` -> 0.5), else None."""
    if not name.startswith(prefix):
        return None
    try:
        return float(name[len(prefix) :])
    except ValueError:
        return None


def metric_spec(name: str) -> MetricSpec:
    """The spec of a metric key, including the families (FROC points, operating points,
    per-structure volumes)."""
    if name in METRICS:
        return METRICS[name]
    parts = volume_parts(name)
    if parts is not None:
        base = metric_spec(parts[1])
        return MetricSpec(name, base.label, base.style, base.better)
    if family_target(name, FROC_FAMILY) is not None:
        return MetricSpec(name, "m.froc_point", "prop", 1)
    for family in OPERATING_FAMILIES:
        if family_target(name, family) is not None:
            return MetricSpec(name, "m.operating_point", "prop", 1)
        if name.startswith(family):
            if name.endswith("_threshold"):
                return MetricSpec(name, "m.threshold", "plain", 0)
            return MetricSpec(name, "m.operating_other", "prop", 0)
    if name.startswith(("n_", "count_")):
        return MetricSpec(name, "m.other", "count", 0)
    return MetricSpec(name, "m.other", "plain", 0)


# executive summary columns per kind (a column no row has is left out of that table)
_LATENCY = ("latency_median_s", "latency_p95_s")
SUMMARY_COLUMNS: dict[str, tuple[str, ...]] = {
    "classification": ("n_cases", "prevalence", "sensitivity", "specificity", "auc", *_LATENCY),
    "detection": ("n_cases", "prevalence", "sensitivity", "specificity", "cpm", *_LATENCY),
    "volumetry": (
        "n_cases",
        "prevalence",
        "sensitivity",
        "specificity",
        "auc",
        "icc",
        "dice",
        "mae_ml",
        *_LATENCY,
    ),
    "triage": ("n_cases", "prevalence", "sensitivity", "specificity", "auc", *_LATENCY),
}
# columns that stay in a summary table even when no row has them (shown as "not logged")
SUMMARY_CORE = ("n_cases", "sensitivity", "specificity")

AGREEMENT_METRICS: tuple[str, ...] = (
    "icc",
    "dice",
    "mae_ml",
    "ba_bias_ml",
    "ba_loa_low_ml",
    "ba_loa_high_ml",
    "n_pairs",
)

# per-task detail tables: (i18n key of the title, metric keys or a family prefix ending in '*')
DETAIL_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "detail.flow",
        (
            "n_cases",
            "n_positive",
            "n_negative",
            "prevalence",
            "n_failed",
            "n_timeout",
            "n_missing",
            "n_excluded",
        ),
    ),
    ("detail.accuracy", ("sensitivity", "specificity", "ppv", "npv", "accuracy", "auc")),
    ("detail.crosstab", ("threshold", "tp", "fn", "fp", "tn")),
    (
        "detail.froc",
        (
            "cpm",
            "froc_sens_fp_*",
            "n_nodules",
            "n_nodules_detected",
            "n_candidates",
            "n_false_positives",
        ),
    ),
    ("detail.screening", ("recall_rate", "cdr_per_1000", "ppv1")),
    # volume agreement: one table per structure (vol.<structure>.*), or the plain keys
    (
        "detail.agreement",
        AGREEMENT_METRICS,
    ),
    ("detail.operating", ("sens_at_spec_*", "spec_at_sens_*")),
    (
        "detail.latency",
        (
            "latency_n",
            "latency_median_s",
            "latency_p25_s",
            "latency_p75_s",
            "latency_p95_s",
            "latency_max_s",
            "latency_mean_s",
        ),
    ),
)

OPERATIONS_METRICS: tuple[str, ...] = (
    "n_studies",
    "ttr_median_s",
    "ttr_p95_s",
    "gateway_overhead_median_s",
    "throughput_per_h",
    "n_failed",
    "n_timeout",
)
OPERATIONS_BY_HOUR = "ttr_median_s_by_hour"

# subgroup variables in report order; a subgroup metric is sg.<variable>.<value>.<metric>
SUBGROUP_VARIABLES: tuple[str, ...] = ("site", "manufacturer", "sex", "age_band")
# the metric a forest plot shows, first one logged wins
FOREST_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("auc", "sensitivity", "specificity"),
    "detection": ("sensitivity", "cpm", "auc"),
    "volumetry": ("icc", "mae_ml", "auc", "sensitivity"),
    "triage": ("sensitivity", "auc", "specificity"),
}

CI_LOW = "_ci_low"
CI_HIGH = "_ci_high"
