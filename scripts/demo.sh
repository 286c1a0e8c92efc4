#!/usr/bin/env bash
# The platform demo, step by step; each step is a `gai` command a user can run alone.
# DEMO_PATIENTS=N makes the synthetic cohort bigger (default: the generator's small size).
set -euo pipefail
cd "$(dirname "$0")/.."
export GAI_HOME=${GAI_HOME:-$PWD/var}
gai=.venv/bin/gai
cohort="$GAI_HOME/synth"
step() { printf '\n== %s\n' "$*"; }

step "1/7 platform home and pseudonymization key ($GAI_HOME)"
$gai init

step "2/7 synthetic three-hospital cohort -> $cohort"
$gai synth "$cohort" ${DEMO_PATIENTS:+--patients "$DEMO_PATIENTS"}

step "3/7 site PACS: one Orthanc per hospital on loopback"
$gai pacs up

step "4/7 each hospital's images into its own PACS by C-STORE, checked by C-FIND"
$gai pacs seed "$cohort"

step "5/7 ingest from the three PACS (C-FIND/C-MOVE): pseudonymized into the store and catalog"
$gai ingest --all-sites

step "6/7 ground truth, keyed by original UIDs, converted to pseudonyms and imported"
$gai labels import "$cohort" --synthetic
$gai catalog stats

step "7/7 a named research cohort and its data card"
$gai cohort create demo-lung-ct --modality CT --task lung_nodule_ct --overwrite \
  --purpose "Demonstration: chest CT of the three hospitals with lung-nodule reference labels"
$gai cohort card demo-lung-ct

cat <<EOT

Demo complete.
  cohort (identified, synthetic):  $cohort  (ground truth in $cohort/labels)
  pseudonymized store and catalog: $GAI_HOME/store, \`$gai catalog query "SELECT site, count(*) FROM studies GROUP BY site"\`
  researcher tutorial:             notebooks/01_explore_store.ipynb (GAI_HOME=$GAI_HOME)
  site PACS:                       \`$gai pacs status\` (web UI: http://127.0.0.1:HTTP-PORT/app/explorer.html)
  stop the PACS:                   \`$gai pacs down\`; start over: \`make clean demo\`
EOT
