"""``gai vault lookup``: the data steward's re-identification of a pseudonym."""

from __future__ import annotations

import argparse
import json

from gai_research.cli._common import print_table, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "vault",
        help="re-identification vault of the data steward (restricted)",
        description="The vault maps pseudonyms to original identifiers. It lives in HOME/vault "
        "(0700, file 0600) and is for the data steward only; researchers' accounts cannot read it.",
    )
    commands = parser.add_subparsers(
        dest="vault_command", metavar="COMMAND", title="commands", required=True
    )
    lookup = commands.add_parser(
        "lookup",
        help="original identifiers behind a patient pseudonym, study UID or accession number",
        description="Print the original patient identifiers (per site) and the studies behind a "
        "patient pseudonym (GP...), a pseudonymous Study Instance UID (2.25...) or a pseudonymous "
        "accession number (GA...).",
    )
    lookup.add_argument(
        "pseudonym", metavar="PSEUDONYM", help="patient pseudonym, study UID or accession number"
    )
    lookup.add_argument("--json", action="store_true", help="machine-readable output")
    lookup.set_defaults(handler=run_lookup)


def run_lookup(args: argparse.Namespace) -> int:
    from gai_research.deid import Vault, VaultError

    settings = settings_from(args)
    found = Vault(settings.vault_dir).lookup(args.pseudonym)
    if not found["patients"]:
        raise VaultError(
            f"{args.pseudonym} is not in the vault",
            hint="check the pseudonym, or the GAI_HOME in use",
        )
    if args.json:
        print(json.dumps(found, indent=1, ensure_ascii=False))
        return 0
    print_table(
        found["patients"],
        ["pseudonym", "site", "patient_id", "issuer_of_patient_id", "patient_name", "birth_date", "rrn_masked",
         "linkage", "date_shift_days"],
    )  # fmt: skip
    if found["studies"]:
        print()
        print_table(
            found["studies"],
            [
                "site",
                "study_date",
                "accession_number",
                "pseudo_accession_number",
                "study_uid",
                "pseudo_study_uid",
            ],
        )
    return 0
