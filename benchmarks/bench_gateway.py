"""The real-time gateway under load: studies from three site PACS at once, to a slow vendor.

Three simulated site PACS (real Orthanc, as ``gai pacs up`` runs them) hold a synthetic
cohort (chest CT 64 slices, head CT 32, brain MR 80, mammography 4, chest X-ray 1). A
simulated vendor HTTP service (``HttpVendorSimulator``, in a process of its own) answers
every study after a configured delay ``D``. ``--concurrency C`` workers each have a PACS
push one study to the gateway (Orthanc ``POST /modalities/<gw>/store``, round-robin over
the three sites) and wait until the result SR is stored back in that PACS before pushing
the next: at most C studies are in the chain at any moment.

Per study, *end to end* is from the push request to the SR stored back in the site PACS
(the gateway's ``stored_back_at``); the gateway's **overhead** is end to end minus the
configured delay D: everything that is not the vendor's deliberate wait (PACS to
gateway transfer, completion, routing, the upload to the vendor, the SR, the store back).
The latency log's own split is printed too. Reports throughput and percentiles. Goal:
median overhead under 1 s at 10 concurrent studies on 2 cores.

Bounded: ``--studies`` (default 30) and ``--timeout`` (default 300 s). Needs Orthanc.

    .venv/bin/python benchmarks/bench_gateway.py --studies 30 --concurrency 10 --delay 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# run as a plain script from the repository: make the package importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SITES = ("SUWON", "ANSEONG", "ICHEON")


# --- the simulated vendor's model (runs in the simulator process) ---------------------------
class QuickModel:
    """Answers one finding on a real image of the study at once (the delay is the simulator's)."""

    def __init__(self) -> None:
        from gai_research.models.types import ModelInfo

        self.info = ModelInfo(
            name="bench-vendor",
            vendor="simulated vendor (benchmark)",
            version="1.0-sim",
            task="lung_nodule_ct",
            kind="detection",
            origin="simulator",
        )

    def predict(self, study):
        from gai_research.models.types import Finding, Prediction

        series = study.series[0]
        first = next(series.datasets(pixels=False))
        if series.modality in ("DX", "MG", "CR"):
            finding = Finding(
                score=0.8,
                series_uid=series.series_uid,
                sop_uid=str(first.SOPInstanceUID),
                row_px=float(first.Rows) / 2,
                col_px=float(first.Columns) / 2,
            )
        else:
            x, y, z = (float(v) for v in first.ImagePositionPatient)
            finding = Finding(
                score=0.8, series_uid=series.series_uid, x_mm=x + 20, y_mm=y + 20, z_mm=z
            )
        return Prediction(study_uid=study.study_uid, score=0.8, findings=(finding,))

    def close(self) -> None:
        pass


def run_simulator(delay: float) -> None:
    """``--simulator``: serve QuickModel until stdin closes; print the URL."""
    from gai_research.models.simulators.http import HttpVendorSimulator

    with HttpVendorSimulator(QuickModel(), delay_s=delay) as simulator:
        print(simulator.url, flush=True)
        sys.stdin.read()


# --- the benchmark ----------------------------------------------------------------------------
def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"median {statistics.median(values):.2f} s, p25 {percentile(values, 0.25):.2f}, "
        f"p75 {percentile(values, 0.75):.2f}, p95 {percentile(values, 0.95):.2f}, "
        f"max {max(values):.2f}"
    )


def cohort_studies(
    cohort: Path, patients: int, modalities: set[str] | None
) -> list[tuple[str, str, int]]:
    """(site, study UID, instances) of the cohort, made once and cached in ``cohort``."""
    from gai_research.synth.cohort import ensure_cohort

    summary = ensure_cohort(cohort, patients=patients, seed=7)
    return [
        (s.site, s.study_uid, s.n_instances)
        for s in summary.studies
        if modalities is None or s.modality in modalities
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=30, help="studies pushed (default 30)")
    parser.add_argument("--concurrency", type=int, default=10, help="studies in flight (10)")
    parser.add_argument("--delay", type=float, default=2.0, help="vendor delay D in s (2.0)")
    parser.add_argument("--patients", type=int, default=8, help="cohort size (default 8)")
    parser.add_argument(
        "--modalities", help="only studies of these modalities, e.g. DX,MG (default: all)"
    )
    parser.add_argument(
        "--cohort", type=Path, default=Path(tempfile.gettempdir()) / "gai-bench-gateway-cohort"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after (300 s)")
    parser.add_argument(
        "--sender",
        choices=("orthanc", "storescu"),
        default="orthanc",
        help="who sends each study: the site's Orthanc (POST /modalities/<gw>/store; Orthanc "
        "runs at most 2 such jobs at once) or DCMTK's storescu as the site's AE (default orthanc)",
    )
    parser.add_argument(
        "--workers",
        choices=("process", "threads"),
        default="process",
        help="models and result return in a second process (the default) or in threads of "
        "the gateway process",
    )
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    parser.add_argument("--simulator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.simulator:
        run_simulator(args.delay)
        return 0

    from gai_research.dicom.net import DicomNode, store_files
    from gai_research.gateway.pacs_link import link_site_pacs, push_study
    from gai_research.gateway.rules import parse_rules
    from gai_research.gateway.service import Gateway
    from gai_research.home import init_home
    from gai_research.pacs import pacs_down, pacs_up
    from tests.conftest import settings_on_free_ports

    wanted = {m.strip().upper() for m in args.modalities.split(",")} if args.modalities else None
    studies = cohort_studies(args.cohort, args.patients, wanted)
    by_site = {site: [s for s in studies if s[0] == site] for site in SITES}
    chosen: list[tuple[str, str, int]] = []
    while len(chosen) < args.studies and any(by_site.values()):
        for site in SITES:
            if by_site[site] and len(chosen) < args.studies:
                chosen.append(by_site[site].pop(0))
    home = Path(tempfile.mkdtemp(prefix="gai-bench-gateway-")) / "home"
    settings = settings_on_free_ports(home)
    settings = settings.model_copy(
        update={
            "gateway": settings.gateway.model_copy(
                update={"dicom_port": 0, "dispatch_process": args.workers == "process"}
            )
        }
    )
    init_home(settings)
    print(
        f"{len(chosen)} studies ({sum(s[2] for s in chosen)} instances, "
        f"{args.modalities or 'CT, MR, MG, DX'}) from {len(SITES)} sites, "
        f"{args.concurrency} in flight, vendor delay {args.delay:g} s, sent by {args.sender}, "
        f"workers in {args.workers}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    pacs_up(settings)
    simulator = subprocess.Popen(
        [sys.executable, __file__, "--simulator", "--delay", str(args.delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    gateway = None
    try:
        url = simulator.stdout.readline().strip()
        for site in SITES:
            pacs = settings.site(site).pacs
            node = DicomNode(pacs.ae_title, "127.0.0.1", pacs.dicom_port)
            files = [
                p
                for s in chosen
                if s[0] == site
                for p in sorted((args.cohort / site / s[1]).rglob("*.dcm"))
            ]
            result = store_files(node, files, settings.platform_ae_title)
            assert result.failed == 0, result.reasons
        rules = parse_rules(
            {
                "version": 1,
                "defaults": {"concurrency": args.concurrency, "timeout_s": 120, "retries": 0},
                "rules": [{"name": "all", "match": {}, "models": ["bench-vendor"]}],
            }
        )

        vendor = {
            "name": "bench-vendor",
            "adapter": "http",
            "vendor": "simulated vendor (benchmark)",
            "version": "1.0-sim",
            "task": "lung_nodule_ct",
            "kind": "detection",
            "origin": "simulator",
            "options": {"url": url, "timeout_s": 120, "retries": 0},
        }
        (settings.home / "models.yaml").write_text(json.dumps({"models": [vendor]}))
        gateway = Gateway(settings, rules=rules, port=0).start()
        link_site_pacs(settings, ae_title=gateway.ae_title, port=gateway.port)

        def send_storescu(site: str, files: list[Path]) -> None:
            ae = settings.site(site).pacs.ae_title
            command = ["storescu", "-aet", ae, "-aec", gateway.ae_title, "127.0.0.1"]
            subprocess.run(
                [*command, str(gateway.port), *map(str, files)],
                check=True,
                env={**os.environ, "TCP_NODELAY": "1"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        results: list[dict] = []
        failures: list[str] = []
        work = list(chosen)
        lock = threading.Lock()
        deadline = time.monotonic() + args.timeout

        def worker() -> None:
            from gai_research.gateway.identity import study_key

            while time.monotonic() < deadline:
                with lock:
                    if not work:
                        return
                    site, uid, count = work.pop(0)
                key = study_key(gateway.secret, uid)
                pushed = time.time()
                if args.sender == "orthanc":
                    push_study(settings, site, uid)
                else:
                    send_storescu(site, sorted((args.cohort / site / uid).rglob("*.dcm")))
                while time.monotonic() < deadline:
                    jobs = gateway.db.jobs(study_key=key)
                    if jobs and jobs[0].state in ("returned", "failed"):
                        break
                    time.sleep(0.2)  # the latencies come from the log, not from this poll
                else:
                    failures.append("time-out")
                    return
                job = jobs[0]
                if job.state != "returned":
                    failures.append(job.reason or "failed")
                    continue
                with lock:
                    results.append(
                        {
                            "site": site,
                            "instances": count,
                            "pushed": pushed,
                            "e2e_s": job.stored_back_at - pushed,
                            "transfer_s": job.received_first - pushed,
                            "complete_s": job.complete_at - job.received_first,
                            "queue_s": job.sent_to_model - job.complete_at,
                            "vendor_call_s": job.model_seconds,
                            "return_s": job.stored_back_at - job.result_at,
                            "prepare_s": job.result_at - job.sent_to_model - job.model_seconds,
                            "stored": job.stored_back_at,
                        }
                    )

        from gai_research.pacs.orthanc import servers

        processes = {"simulator": simulator.pid}
        processes |= {f"Orthanc {o.name}": o.pid() for o in servers(settings)}
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        process = getattr(gateway.workers, "_process", None)
        workers_pid = process.pid if process is not None else None
        workers_before = cpu_seconds(workers_pid)
        gateway_cpu = time.process_time()
        started = time.time()
        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = max((r["stored"] for r in results), default=time.time()) - started
        cpu = {"gateway (and this benchmark's pollers)": time.process_time() - gateway_cpu}
        if args.workers == "process":
            cpu["gateway workers"] = cpu_seconds(workers_pid) - workers_before
        cpu |= {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
    finally:
        if gateway is not None:
            gateway.stop(grace=2.0)
        simulator.stdin.close()
        simulator.wait(timeout=20)
        pacs_down(settings)

    e2e = [r["e2e_s"] for r in results]
    overhead = [r["e2e_s"] - args.delay for r in results]
    call_overhead = [r["vendor_call_s"] - args.delay for r in results]
    internal = [r["e2e_s"] - r["vendor_call_s"] for r in results]
    print(f"\nreturned {len(results)} of {len(chosen)}; failed {len(failures)} {failures or ''}")
    print(f"throughput: {len(results) / elapsed * 3600:.0f} studies/h ({elapsed:.1f} s wall)")
    print(f"end to end (push -> SR in PACS): {summary(e2e)}")
    print(f"gateway overhead (end to end - {args.delay:g} s): {summary(overhead)}")
    print("  of which:")
    for name, label in (
        ("transfer_s", "PACS push -> first instance at the gateway"),
        ("complete_s", "first instance -> study complete"),
        ("queue_s", "complete -> sent to the vendor"),
        ("prepare_s", "sent -> answer, besides the vendor call (input preparation)"),
        ("return_s", "answer -> SR stored back in the PACS"),
    ):
        print(f"    {label}: {summary([r[name] for r in results])}")
    print(f"    vendor call minus its delay (upload, answer): {summary(call_overhead)}")
    print(f"  the gateway's own part (end to end - vendor call): {summary(internal)}")
    print(
        "CPU seconds used while the studies ran: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items())
        + f" (of {elapsed * (os.cpu_count() or 1):.1f} available)"
    )
    goal = statistics.median(overhead) < 1.0 if overhead else False
    print(
        f"goal median overhead < 1 s at {args.concurrency} concurrent: {'met' if goal else 'NOT met'}"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "studies": len(chosen),
                    "returned": len(results),
                    "failed": len(failures),
                    "concurrency": args.concurrency,
                    "delay_s": args.delay,
                    "throughput_per_h": len(results) / elapsed * 3600,
                    "e2e_median_s": statistics.median(e2e) if e2e else None,
                    "e2e_p95_s": percentile(e2e, 0.95) if e2e else None,
                    "overhead_median_s": statistics.median(overhead) if overhead else None,
                    "overhead_p95_s": percentile(overhead, 0.95) if overhead else None,
                }
            )
        )
    return 0 if results and not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
