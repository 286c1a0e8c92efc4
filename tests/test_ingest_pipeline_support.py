"""Helpers of the ingest pipeline tests (no tests here): small synthetic cohorts, the
identifiers planted in them, a scanner that finds them in files and text, and the CLI.

The scanner reports which *kind* of identifier it found where, never the value.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gai_research.config import Settings, Site

# `gai` in a subprocess (the venv's console script may not be on PATH in a test run)
GAI = "import sys\nfrom gai_research.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def run_gai(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``gai ARGS`` through the real ``main``; (exit code, stdout, stderr)."""
    from gai_research import cli

    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def table_counts(out: str) -> list[dict[str, int]]:
    """The reconciliation tables a `gai ingest` printed: one ``{outcome: count}`` per site."""
    tables: list[dict[str, int]] = []
    for line in out.splitlines():
        if line.startswith("outcome "):
            tables.append({})
            continue
        match = re.match(r"^\s*(\S.*?)\s{2,}(\d+|\?)(\s|$)", line)
        if tables and match and not line.startswith("---"):
            tables[-1][match.group(1)] = -1 if match.group(2) == "?" else int(match.group(2))
    return tables


def env_for(settings: Settings) -> dict[str, str]:
    """GAI_* variables that make ``load_settings()`` give ``settings`` (home and ports)."""
    env = {
        "GAI_HOME": str(settings.home),
        "GAI_PLATFORM_DICOM_PORT": str(settings.platform_dicom_port),
    }
    for site, conf in settings.sites.items():
        env[f"GAI_SITES__{site.value}__PACS__DICOM_PORT"] = str(conf.pacs.dicom_port)
        env[f"GAI_SITES__{site.value}__PACS__HTTP_PORT"] = str(conf.pacs.http_port)
    return env


def use_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name, value in env_for(settings).items():
        monkeypatch.setenv(name, value)


def home_like(settings: Settings, home: Path) -> Settings:
    """The same ports (site PACS, platform AE) with another, initialised home."""
    from gai_research.home import init_home

    own = settings.model_copy(update={"home": home})
    init_home(own)
    return own


# --- cohorts -------------------------------------------------------------------------------
@dataclass
class SmallCohort:
    """Kept studies of a synthetic cohort, in ``root/<SITE>/<StudyUID>/...`` (identified)."""

    root: Path
    full: Path  # the generator's whole output (labels/ refer to every study)
    patients: int
    seed: int
    studies: list = field(default_factory=list)  # synth StudyInfo of the kept studies

    def of(self, site: Site | str) -> list:
        return [s for s in self.studies if s.site == Site.parse(site).value]

    def instances(self, site: Site | str | None = None) -> int:
        chosen = self.studies if site is None else self.of(site)
        return sum(s.n_instances for s in chosen)

    def files(self, site: Site | str | None = None) -> list[Path]:
        sites = [Site.parse(site)] if site is not None else list(Site)
        return sorted(p for s in sites for p in (self.root / s.value).rglob("*.dcm"))


def small_cohort(
    out: Path, *, patients: int, seed: int, keep: Callable[[object], bool], root: str = "kept"
) -> SmallCohort:
    """Generate a cohort into ``out/full`` and move the studies ``keep`` accepts to ``out/root``."""
    from gai_research.synth import generate_cohort

    summary = generate_cohort(out / "full", patients=patients, seed=seed)
    cohort = SmallCohort(out / root, out / "full", patients, seed)
    for study in summary.studies:
        if keep(study):
            move_study(cohort, study, root)
    return cohort


def move_study(cohort: SmallCohort, study, root: str = "kept") -> None:
    """Move one generated study into ``cohort.root`` (or a sibling folder named ``root``)."""
    target = cohort.root.parent / root / study.site / study.study_uid
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(cohort.full / study.site / study.study_uid), target)
    if root == cohort.root.name:
        cohort.studies.append(study)


# --- planted identifiers -----------------------------------------------------------------
@dataclass
class Planted:
    """Identifiers of a synthetic cohort: text by kind, and the original UIDs."""

    texts: dict[str, set[str]] = field(default_factory=dict)
    uids: set[str] = field(default_factory=set)

    def add(self, kind: str, *values: str) -> None:
        for value in values:
            value = value.strip()
            if len(value) >= 3:
                self.texts.setdefault(kind, set()).add(value)

    def patterns(self) -> list[tuple[str, bytes]]:
        """(kind, bytes) to look for: UTF-8 and EUC-KR of every value, lowercased ASCII."""
        found: list[tuple[str, bytes]] = []
        for kind, values in self.texts.items():
            for value in values:
                for codec in ("utf-8", "euc-kr"):
                    try:
                        encoded = value.encode(codec)
                    except UnicodeEncodeError:
                        continue
                    found.append((kind, encoded.lower() if value.isascii() else encoded))
        return sorted(set(found))


def _names(dicom_name: str) -> list[str]:
    """Forms of a ``Roman^Given=漢^字=한^글`` name a leak could take: a romanized given name
    (any form of the full name contains it) and the Hanja and Hangul names with or
    without the caret."""
    forms = []
    for group in dicom_name.split("="):
        family, _, given = group.partition("^")
        if not (family and given):
            continue
        if given.isascii():
            forms.append(given if len(given) >= 5 else f"{family}^{given}")
        else:
            forms += [group, family + given]
    return forms


def planted_identifiers(cohort: SmallCohort, *extra_roots: Path) -> Planted:
    """Every identifier the generator planted (names of patients, guardians and staff, RRNs,
    phones, addresses, MRNs, accession numbers) and the original UIDs of the files under
    the cohort's root and ``extra_roots``."""
    from pydicom import dcmread

    from gai_research.synth.headers import study_context
    from gai_research.synth.people import plan_cohort

    planted = Planted()
    for plan in plan_cohort(cohort.patients, cohort.seed):
        person = plan.person
        planted.add("name", *_names(person.name.dicom), person.name.hangul)
        planted.add("rrn", person.rrn, person.rrn.replace("-", ""))
        planted.add("phone", person.phone, person.phone.replace("-", ""))
        road = person.address.split(",")[0]
        planted.add("address", person.address, road.split(" ", 2)[-1])
        planted.add("mrn", plan.mrn)
        planted.add("accession", plan.accession)
        ctx = study_context(plan, cohort.seed, cohort.patients)
        for staff in (ctx.referring, ctx.performing, ctx.operator):
            planted.add("name", *_names(staff))
        for text in (ctx.patient_comments or "", ctx.history, ctx.image_comments or ""):
            planted.add("name", *re.findall(r"보호자 (\S+)", text))
            planted.add("phone", *re.findall(r"01\d-\d{3,4}-\d{4}", text))
    for root in (cohort.root, *extra_roots):
        for path in sorted(Path(root).rglob("*.dcm")):
            planted.uids.update(_uids(dcmread(path, stop_before_pixels=True)))
    return planted


def _uids(ds) -> set[str]:
    found = set()
    for element in ds.iterall():
        if element.VR == "UI" and element.value:
            values = element.value if isinstance(element.value, list) else [element.value]
            found.update(
                str(v) for v in values if str(v) and not str(v).startswith("1.2.840.10008.")
            )
    return found


# --- the scanner ---------------------------------------------------------------------------
_UID_TOKEN = re.compile(rb"[0-9]+(?:\.[0-9]+){2,}")
_PIXEL_TAG = b"\xe0\x7f\x10\x00"


def _trie_regex(words: set[bytes]) -> bytes:
    """A regular expression matching any of ``words``, as a trie (fast: it branches by byte
    instead of trying every word at every position)."""
    trie: dict = {}
    for word in words:
        node = trie
        for byte in word:
            node = node.setdefault(byte, {})
        node[None] = True

    def build(node: dict) -> bytes:
        ends = None in node
        branches = [
            re.escape(bytes([b])) + build(child)
            for b, child in sorted(
                ((b, c) for b, c in node.items() if b is not None), key=lambda x: x[0]
            )
        ]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        return b"(?:" + body + b")?" if ends else body

    return build(trie)


def _matcher(planted: Planted) -> re.Pattern[bytes]:
    """One regular expression for every identifier (longest first), cached per Planted."""
    cached = getattr(planted, "_matcher", None)
    if cached is None:
        cached = re.compile(_trie_regex({p for _kind, p in planted.patterns()}))
        planted._matcher = cached  # type: ignore[attr-defined]
        planted._kinds = {p: kind for kind, p in planted.patterns()}  # type: ignore[attr-defined]
    return cached


def _scan_bytes(data: bytes, planted: Planted) -> set[str]:
    matcher = _matcher(planted)
    kinds = {planted._kinds[m.group(0)] for m in matcher.finditer(data.lower())}  # type: ignore[attr-defined]
    kinds |= {planted._kinds[m.group(0)] for m in matcher.finditer(data)}  # type: ignore[attr-defined]
    if any(token.decode() in planted.uids for token in _UID_TOKEN.findall(data)):
        kinds.add("original UID")
    return kinds


def _dicom_text(path: Path) -> str:
    """Every value of a DICOM file as text, decoded with its character set."""
    from pydicom import dcmread

    ds = dcmread(path, stop_before_pixels=True)
    return "\n".join(str(e.value) for e in ds.iterall() if e.VR not in ("OB", "OW", "UN"))


def _parquet_text(path: Path) -> str:
    import pyarrow.parquet as pq

    return repr(pq.read_table(path).to_pylist())


def leaks_in_files(planted: Planted, files: Iterable[Path]) -> dict[str, set[str]]:
    """``{file name: kinds of identifier found}`` over raw bytes and decoded content."""
    found: dict[str, set[str]] = {}
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".dcm":
            cut = data.rfind(_PIXEL_TAG)
            kinds = _scan_bytes(data[:cut] if cut > 0 else data, planted)
            kinds |= _scan_bytes(_dicom_text(path).encode(), planted)
        else:
            kinds = _scan_bytes(data, planted)
            if path.suffix == ".parquet":
                kinds |= _scan_bytes(_parquet_text(path).encode(), planted)
        if kinds:
            found[path.name] = kinds
    return found


def leaks_in_text(planted: Planted, text: str) -> set[str]:
    return _scan_bytes(text.encode("utf-8"), planted)


def catalog_text(settings: Settings) -> str:
    """Every row of every catalog table as text (the database file itself is compressed)."""
    import duckdb

    from gai_research.store.catalog import catalog_path
    from gai_research.store.schema import TABLES

    con = duckdb.connect(str(catalog_path(settings)), read_only=True)
    try:
        return "\n".join(repr(con.execute(f"SELECT * FROM {name}").fetchall()) for name in TABLES)
    finally:
        con.close()


def shared_files(settings: Settings) -> list[Path]:
    """Every file of the researchers' side: the store and the catalog (with snapshots)."""
    roots = (settings.store_dir, settings.catalog_dir)
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file())


def catalog_instances(settings: Settings) -> int:
    from gai_research.store import open_snapshot

    with open_snapshot(settings) as reader:
        return reader.query("SELECT count(*) AS n FROM instances")["n"][0].as_py()
