"""How fast the catalog builds, publishes and answers a cohort query, against pandas.

In one run, on one synthetic catalog of N instance rows (default 1,000,000; realistic
mixes over the three sites, CT/DX/MG/MR, ~10 manufacturers, ~50 instances per series
on average, study dates over 2026):

1. build: ``CatalogWriter.bulk_load`` of Arrow tables into a fresh DuckDB catalog
   (the bulk path, with the count refresh), timed, against the floor of DuckDB
   loading the same Arrow tables with no keys, counts or checks;
2. publish: ``publish_snapshot`` (sorted Parquet + content hash), timed, against the
   floor of DuckDB's own unsorted COPY TO Parquet;
3. query: a typical cohort query (site + modality + manufacturer + date range ->
   studies with series and instance counts) on the snapshot, run --repeat times:
   median and p95. Goal: median under 100 ms at 1,000,000 instances.
4. peer: the same query with pandas on the same tables held in memory (loading is
   not timed), same repeats; the results are checked equal, and the ratio printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

SITES = ("SUWON", "ANSEONG", "ICHEON")
SITE_P = (0.40, 0.35, 0.25)
MODALITIES = ("CT", "DX", "MG", "MR")
MODALITY_P = (0.35, 0.30, 0.20, 0.15)
SERIES_PER_STUDY = {"CT": (2, 4), "DX": (1, 2), "MG": (4, 4), "MR": (3, 5)}
INSTANCES_PER_SERIES = {"CT": (20, 150), "DX": (1, 2), "MG": (1, 1), "MR": (20, 120)}
VENDORS = {
    "CT": ("SIEMENS", "GE MEDICAL SYSTEMS", "PHILIPS", "CANON MEDICAL SYSTEMS"),
    "DX": ("SAMSUNG ELECTRONICS", "DRGEM", "CARESTREAM", "FUJIFILM"),
    "MG": ("HOLOGIC", "GE MEDICAL SYSTEMS", "SIEMENS", "FUJIFILM"),
    "MR": ("SIEMENS", "GE MEDICAL SYSTEMS", "PHILIPS"),
}
SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
}
MATRIX = {"CT": 512, "DX": 2048, "MG": 3328, "MR": 256}
BYTES = {"CT": 526_000, "DX": 8_400_000, "MG": 22_000_000, "MR": 132_000}

QUERY = """
SELECT st.study_uid, st.patient_pseudonym, st.study_date, st.age_years,
       count(DISTINCT se.series_uid) AS n_series, count(*) AS n_instances
FROM studies st
JOIN series se ON se.study_uid = st.study_uid
JOIN instances i ON i.series_uid = se.series_uid
WHERE st.site = ? AND se.modality = ? AND se.manufacturer = ?
  AND st.study_date BETWEEN ? AND ?
GROUP BY ALL
ORDER BY st.study_date, st.study_uid
"""
PARAMS = ("SUWON", "CT", "SIEMENS", dt.date(2026, 3, 1), dt.date(2026, 5, 31))


def _uids(rng: np.random.Generator, n: int) -> list[str]:
    high = rng.integers(10**17, 10**18, size=n, dtype=np.int64)
    low = rng.integers(0, 10**18, size=n, dtype=np.int64)
    return [f"2.25.{h}{lo:018d}" for h, lo in zip(high.tolist(), low.tolist(), strict=True)]


def synthetic_tables(n_instances: int, seed: int) -> dict[str, pa.Table]:
    """Arrow tables for patients, studies, series and instances (about n_instances rows)."""
    rng = np.random.default_rng(seed)
    per_study = {
        m: np.mean(SERIES_PER_STUDY[m]) * np.mean(INSTANCES_PER_SERIES[m]) for m in MODALITIES
    }
    mean_study = sum(p * per_study[m] for m, p in zip(MODALITIES, MODALITY_P, strict=True))
    n_studies = int(n_instances / mean_study * 1.2) + 10
    st_mod = rng.choice(len(MODALITIES), size=n_studies, p=MODALITY_P)
    st_site = rng.choice(len(SITES), size=n_studies, p=SITE_P)
    # series per study, then instances per series; cut at n_instances
    lo = np.array([SERIES_PER_STUDY[m][0] for m in MODALITIES])[st_mod]
    hi = np.array([SERIES_PER_STUDY[m][1] for m in MODALITIES])[st_mod]
    n_series_per_study = rng.integers(lo, hi + 1)
    se_study = np.repeat(np.arange(n_studies), n_series_per_study)
    se_mod = st_mod[se_study]
    lo = np.array([INSTANCES_PER_SERIES[m][0] for m in MODALITIES])[se_mod]
    hi = np.array([INSTANCES_PER_SERIES[m][1] for m in MODALITIES])[se_mod]
    n_inst = rng.integers(lo, hi + 1)
    keep = np.searchsorted(np.cumsum(n_inst), n_instances) + 1
    se_study, se_mod, n_inst = se_study[:keep], se_mod[:keep], n_inst[:keep]
    n_inst[-1] -= int(n_inst.sum()) - n_instances
    n_studies = int(se_study.max()) + 1
    st_mod, st_site = st_mod[:n_studies], st_site[:n_studies]
    n_patients = max(n_studies * 2 // 3, 1)
    st_patient = rng.integers(0, n_patients, size=n_studies)
    # a site leans to some vendors: weights differ per site
    se_site = st_site[se_study]
    se_vendor = []
    for mod, site in zip(se_mod.tolist(), se_site.tolist(), strict=True):
        vendors = VENDORS[MODALITIES[mod]]
        se_vendor.append(vendors[(site + int(rng.integers(0, 3))) % len(vendors)])
    study_uid = _uids(rng, n_studies)
    series_uid = _uids(rng, len(se_study))
    day0 = dt.date(2026, 1, 1)
    st_date = [day0 + dt.timedelta(days=int(d)) for d in rng.integers(0, 365, size=n_studies)]
    pseudonyms = [f"PSN-{i:08X}" for i in range(n_patients)]
    patients = pa.table(
        {
            "patient_pseudonym": pseudonyms,
            "sex": rng.choice(["F", "M"], size=n_patients).tolist(),
            "birth_year_band": (1930 + 5 * rng.integers(0, 16, size=n_patients)).astype("int32"),
        }
    )
    studies = pa.table(
        {
            "study_uid": study_uid,
            "patient_pseudonym": [pseudonyms[p] for p in st_patient.tolist()],
            "site": [SITES[s] for s in st_site.tolist()],
            "study_date": pa.array(st_date, pa.date32()),
            "age_years": rng.integers(40, 90, size=n_studies).astype("int32"),
            "description": [f"{MODALITIES[m]} ROUTINE" for m in st_mod.tolist()],
        }
    )
    mods = [MODALITIES[m] for m in se_mod.tolist()]
    series = pa.table(
        {
            "series_uid": series_uid,
            "study_uid": [study_uid[s] for s in se_study.tolist()],
            "modality": mods,
            "manufacturer": se_vendor,
            "model": [f"{v.split()[0]} M{i % 3}" for i, v in enumerate(se_vendor)],
            "image_rows": pa.array([MATRIX[m] for m in mods], pa.int32()),
            "image_columns": pa.array([MATRIX[m] for m in mods], pa.int32()),
            "slice_thickness_mm": pa.array(
                [1.0 if m in ("CT", "MR") else None for m in mods], pa.float64()
            ),
        }
    )
    inst_series = np.repeat(np.arange(len(series_uid)), n_inst)
    within = np.arange(n_instances) - np.repeat(np.cumsum(n_inst) - n_inst, n_inst)
    inst_mods = [mods[s] for s in inst_series.tolist()]
    sop_uid = _uids(rng, n_instances)
    series_of = [series_uid[s] for s in inst_series.tolist()]
    study_of = [study_uid[s] for s in se_study[inst_series].tolist()]
    digests = rng.integers(0, 2**63, size=(n_instances, 4), dtype=np.int64)
    ingested = dt.datetime(2026, 12, 1)
    instances = pa.table(
        {
            "sop_uid": sop_uid,
            "series_uid": series_of,
            "study_uid": study_of,
            "instance_number": (within + 1).astype("int32"),
            "sop_class_uid": [SOP_CLASS[m] for m in inst_mods],
            "transfer_syntax_uid": ["1.2.840.10008.1.2.1"] * n_instances,
            "n_frames": np.ones(n_instances, dtype="int32"),
            "slice_position_mm": pa.array(
                np.where([m in ("CT", "MR") for m in inst_mods], within * 1.0, np.nan),
                from_pandas=True,
            ),
            "path": [
                f"{a}/{b}/{c}.dcm" for a, b, c in zip(study_of, series_of, sop_uid, strict=True)
            ],
            "size_bytes": [BYTES[m] for m in inst_mods],
            "sha256": ["".join(f"{v:016x}" for v in row) for row in digests.tolist()],
            "ingested_at": pa.array([ingested] * n_instances, pa.timestamp("us")),
        }
    )
    return {"patients": patients, "studies": studies, "series": series, "instances": instances}


def timed_runs(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def floors(tables: dict[str, pa.Table], folder: Path) -> tuple[float, float]:
    """The floors: DuckDB loading the same Arrow tables with no keys, counts or checks,
    and DuckDB's own COPY to Parquet of them, unsorted and unhashed."""
    import duckdb

    con = duckdb.connect(str(folder / "floor.duckdb"))
    try:
        start = time.perf_counter()
        con.begin()
        for name, table in tables.items():
            con.register("_arrow", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _arrow")
            con.unregister("_arrow")
        con.commit()
        build = time.perf_counter() - start
        start = time.perf_counter()
        for name in tables:
            con.execute(f"COPY {name} TO '{folder / name}.parquet' (FORMAT parquet)")
        publish = time.perf_counter() - start
    finally:
        con.close()
    return build, publish


def pandas_query(frames: dict):
    site, modality, manufacturer, first, last = PARAMS
    st = frames["studies"]
    st = st[(st["site"] == site) & (st["study_date"] >= first) & (st["study_date"] <= last)]
    se = frames["series"]
    se = se[(se["modality"] == modality) & (se["manufacturer"] == manufacturer)]
    joined = st.merge(se[["series_uid", "study_uid"]], on="study_uid").merge(
        frames["instances"][["series_uid"]], on="series_uid"
    )
    keys = ["study_uid", "patient_pseudonym", "study_date", "age_years"]
    out = (
        joined.groupby(keys, sort=False)
        .agg(n_series=("series_uid", "nunique"), n_instances=("series_uid", "size"))
        .reset_index()
        .sort_values(["study_date", "study_uid"], kind="stable")
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--instances", type=int, default=1_000_000, help="instance rows (default 1,000,000)"
    )
    parser.add_argument("--repeat", type=int, default=30, help="runs of each query (default 30)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    parser.add_argument(
        "--home", type=Path, help="platform home to build in (default: a temporary one)"
    )
    args = parser.parse_args(argv)

    import pandas as pd
    import pyarrow.parquet as pq

    from gai_research.config import load_settings
    from gai_research.home import init_home
    from gai_research.store import CatalogWriter, open_snapshot

    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        home = args.home or Path(tmp) / "home"
        settings = load_settings(home=home)
        init_home(settings)
        start = time.perf_counter()
        tables = synthetic_tables(args.instances, args.seed)
        generate_s = time.perf_counter() - start
        sizes = {name: t.num_rows for name, t in tables.items()}
        print(f"synthetic catalog: {sizes} (generated in {generate_s:.1f} s, not counted)")

        with CatalogWriter(settings) as writer:
            start = time.perf_counter()
            writer.bulk_load(tables)
            build_s = time.perf_counter() - start
            start = time.perf_counter()
            snapshot = writer.publish_snapshot()
            publish_s = time.perf_counter() - start
            start = time.perf_counter()
            again = writer.publish_snapshot()
            republish_s = time.perf_counter() - start
        assert again.id == snapshot.id and not again.created
        build_floor_s, publish_floor_s = floors(tables, Path(tmp))
        del tables

        start = time.perf_counter()
        reader = open_snapshot(settings, snapshot.id)
        open_s = time.perf_counter() - start
        with reader:
            first = reader.query(QUERY, PARAMS)
            duck = timed_runs(lambda: reader.query(QUERY, PARAMS), args.repeat)
        frames = {
            name: pq.read_table(snapshot.file(name)).to_pandas()
            for name in ("studies", "series", "instances")
        }
        expected = pandas_query(frames)
        peer = timed_runs(lambda: pandas_query(frames), args.repeat)
        ours = first.to_pandas()
        pd.testing.assert_frame_equal(
            ours.reset_index(drop=True),
            expected.reset_index(drop=True),
            check_dtype=False,
        )

    per_s = args.instances / build_s
    print(f"\nsnapshot {snapshot.short}  ({len(first)} studies match the cohort query)")
    print(f"{'phase':<44} {'seconds':>8} {'x floor':>8}")
    for name, seconds, floor in (
        ("build: bulk_load (upsert by key + counts)", build_s, build_floor_s),
        ("  floor: DuckDB CREATE TABLE AS from Arrow", build_floor_s, build_floor_s),
        ("publish: sorted Parquet + content hash", publish_s, publish_floor_s),
        ("  floor: DuckDB COPY TO Parquet, unsorted", publish_floor_s, publish_floor_s),
        ("publish again, unchanged", republish_s, publish_floor_s),
    ):
        print(f"{name:<44} {seconds:>8.2f} {seconds / floor:>8.1f}")
    print(f"{'open snapshot':<44} {open_s:>8.3f}")
    print(f"(build: {per_s:,.0f} instances/s)")
    print(f"\ncohort query, {args.repeat} runs     {'median ms':>10} {'p95 ms':>8} {'x ours':>7}")
    rows = (("gai catalog (DuckDB on snapshot)", duck), ("peer: pandas, in memory", peer))
    ours_median = statistics.median(duck)
    for name, runs in rows:
        median = statistics.median(runs)
        print(
            f"{name:<34} {median * 1e3:>10.1f} {p95(runs) * 1e3:>8.1f} {median / ours_median:>7.1f}"
        )
    goal = "met" if ours_median < 0.100 else "NOT met"
    print(f"\ngoal median < 100 ms: {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
