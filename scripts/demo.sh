#!/usr/bin/env bash
# The platform demo, step by step; each step is a `gai` command a user can run alone.
# DEMO_PATIENTS=N makes the synthetic cohort bigger (default: the generator's small size).
set -euo pipefail
cd "$(dirname "$0")/.."
export GAI_HOME=${GAI_HOME:-$PWD/var}
gai=.venv/bin/gai
cohort="$GAI_HOME/synth"
step() { printf '\n== %s\n' "$*"; }

step "1/4 platform home and pseudonymization key ($GAI_HOME)"
$gai init

step "2/4 synthetic three-hospital cohort -> $cohort"
$gai synth "$cohort" ${DEMO_PATIENTS:+--patients "$DEMO_PATIENTS"}

step "3/4 site PACS: one Orthanc per hospital on loopback"
$gai pacs up

step "4/4 each hospital's images into its own PACS by C-STORE, checked by C-FIND"
$gai pacs seed "$cohort"

cat <<EOT

Demo complete.
  cohort (identified, synthetic):  $cohort  (ground truth in $cohort/labels)
  site PACS:                       \`$gai pacs status\` (web UI: http://127.0.0.1:HTTP-PORT/app/explorer.html)
  stop the PACS:                   \`$gai pacs down\`; start over: \`make clean demo\`
EOT
