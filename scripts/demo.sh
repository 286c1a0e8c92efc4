#!/usr/bin/env bash
# The platform demo, step by step; each step is a `gai` command a user can run alone.
# DEMO_PATIENTS=N sets the synthetic cohort size (default 48 patients: about 12 studies a task).
# DEMO_HUB=0 skips starting the shared JupyterHub at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export GAI_HOME=${GAI_HOME:-$PWD/var}
gai=.venv/bin/gai
cohort="$GAI_HOME/synth"
N=12
step() { printf '\n== %s\n' "$*"; }

step "1/$N platform home and pseudonymization key ($GAI_HOME)"
$gai init

step "2/$N synthetic three-hospital cohort -> $cohort"
$gai synth "$cohort" --patients "${DEMO_PATIENTS:-48}"

step "3/$N site PACS: one Orthanc per hospital on loopback"
$gai pacs up

step "4/$N each hospital's images into its own PACS by C-STORE, checked by C-FIND"
$gai pacs seed "$cohort"

step "5/$N ingest from the three PACS (C-FIND/C-MOVE): pseudonymized into the store and catalog"
$gai ingest --all-sites

step "6/$N ground truth, keyed by original UIDs, converted to pseudonyms and imported"
$gai labels import "$cohort" --synthetic
$gai catalog stats

step "7/$N a named research cohort per disease task, and a data card"
$gai cohort create demo-lung-ct --modality CT --task lung_nodule_ct --overwrite \
  --purpose "Demonstration: chest CT of the three hospitals with lung-nodule reference labels"
$gai cohort create demo-chest-dx --modality DX --task lung_nodule_dx --overwrite \
  --purpose "Demonstration: chest X-ray with nodule reference labels"
$gai cohort create demo-mg --modality MG --task breast_mg --overwrite \
  --purpose "Demonstration: screening mammography with mass reference labels"
$gai cohort create demo-brain-mr --modality MR --task dementia_mr --overwrite \
  --purpose "Demonstration: brain MRI with hippocampal volume reference"
$gai cohort create demo-stroke-ct --modality CT --task stroke_ct --overwrite \
  --purpose "Demonstration: non-contrast brain CT with hemorrhage reference"
$gai cohort card demo-lung-ct

step "8/$N baselines (transparent reference algorithms, research only) on each cohort"
$gai models list
$gai models run baseline-lung-nodule-ct --cohort demo-lung-ct
$gai models run baseline-chest-xray --cohort demo-chest-dx
$gai models run baseline-mammography --cohort demo-mg
$gai models run baseline-hippocampal-volume --cohort demo-brain-mr
$gai models run baseline-hemorrhage-ct --cohort demo-stroke-ct

step "9/$N simulated vendors (test doubles: an HTTP service and a DICOM node answering with SR)"
[ -f "$GAI_HOME/models.yaml" ] || $gai models install-demo
$gai models simulators up
$gai models run simulated-vendor-lung-ct --cohort demo-lung-ct
$gai models run simulated-vendor-stroke-ct --cohort demo-stroke-ct
$gai models run simulated-vendor-chest-xray --cohort demo-chest-dx

step "10/$N evaluations of every protocol (papermill notebooks -> MLflow under $GAI_HOME/mlflow)"
status=0
$gai evaluate --all --workers 2 || status=$?
$gai models simulators down
[ "$status" = 0 ] || echo "[demo] some evaluation jobs failed (listed above); their runs are marked FAILED in MLflow"

step "11/$N the results report from MLflow and the catalog (HTML + PDF, Korean labels)"
$gai report --pdf --lang ko --out "$GAI_HOME/reports/demo"

if [ "${DEMO_HUB:-1}" != 0 ]; then
  step "12/$N the shared JupyterHub: notebooks and MLflow behind one login"
  $gai hub --demo --detach
fi

cat <<EOT

Demo complete.
  cohort (identified, synthetic):  $cohort  (ground truth in $cohort/labels)
  pseudonymized store and catalog: $GAI_HOME/store, \`$gai catalog query "SELECT site, count(*) FROM studies GROUP BY site"\`
  models and predictions:          \`$gai models list\`; predictions in the catalog (docs/models.md)
  evaluations in MLflow:           .venv/bin/mlflow ui --backend-store-uri sqlite:///$GAI_HOME/mlflow/mlflow.db
  results report:                  $GAI_HOME/reports/demo/report.html (and report.pdf)
  shared hub (notebooks + MLflow): \`$gai hub status\` (URL and sign-in above); stop it: \`$gai hub stop\`
  researcher tutorial:             notebooks/01_explore_store.ipynb (GAI_HOME=$GAI_HOME)
  site PACS:                       \`$gai pacs status\`; stop: \`$gai pacs down\`; start over: \`make clean demo\`
EOT
