#!/usr/bin/env bash
# The nightly run: the checklist against one profile, its reports in a dated folder, the run appended to the
# history, the trend page refreshed. cron, the systemd timer and Windows' Task Scheduler (through wsl.exe) all
# call this script.
#
#   deploy/nightly.sh PROFILE [pytest args ...]     (the checks default to: -m "not selftest")
#
# Then a short soak (python -m comfycheck.soak --nightly: the profile's [soak] nightly_duration, 10 min unless it
# says otherwise or "off") in the dated folder's soak/, kept in the history as a run of kind "soak".
# Leaves: $COMFYCHECK_REPORTS/<YYYY-MM-DD_HHMMSS>/{report.html, junit.xml, measurements.json, pytest.log,
# soak/report.html, soak.log}, the trend page $COMFYCHECK_REPORTS/trend.html, a run in the profile's history ([results] history), and, where
# COMFYCHECK_PROMETHEUS or the profile's [results] prometheus_file names one, a Prometheus text file.
#   COMFYCHECK_REPORTS     where the dated folders go (default: <checkout>/reports/nightly)
#   COMFYCHECK_KEEP_DAYS   dated folders older than this are removed (default 90; the history keeps every run)
#   COMFYCHECK_PROMETHEUS  e.g. /var/lib/prometheus/node-exporter/comfycheck.prom
# Destructive checks (the watchdog kill) and load runs run only where the profile allows them.
# Exit status: pytest's (0 every check passed, 1 some failed, 2+ the run could not be made), else the soak's
# (1: a soak target missed).
set -uo pipefail
checkout=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 1 ]; then
  echo "usage: $0 PROFILE [pytest args ...]" >&2
  exit 2
fi
profile=$(realpath -m -- "$1")
shift
if [ ! -f "$profile" ]; then
  echo "comfycheck nightly: profile $profile: no such file" >&2
  exit 2
fi
reports=${COMFYCHECK_REPORTS:-$checkout/reports/nightly}
stamp=$(date +%Y-%m-%d_%H%M%S)
out="$reports/$stamp"
mkdir -p "$out" || exit 2
[ $# -gt 0 ] || set -- -m "not selftest"
extra=()
[ -n "${COMFYCHECK_PROMETHEUS:-}" ] && extra+=("--prometheus=$COMFYCHECK_PROMETHEUS")

# -n 0: the checks on one deployment run one after another in one process (./run all spreads self-tests)
"$checkout/run" all -n 0 "$@" --profile "$profile" --html="$out/report.html" --self-contained-html \
  --junitxml="$out/junit.xml" ${extra[@]+"${extra[@]}"} >"$out/pytest.log" 2>&1
rc=$?

"$checkout/.venv/bin/python" -m comfycheck.soak --nightly --profile "$profile" --out "$out/soak" --quiet \
  >"$out/soak.log" 2>&1
soak_rc=$?
[ "$rc" -eq 0 ] && rc=$soak_rc

"$checkout/.venv/bin/python" -m comfycheck.history trend --profile "$profile" --out "$reports/trend.html" \
  >>"$out/pytest.log" 2>&1 || echo "comfycheck nightly: no trend page (see $out/pytest.log)" >&2
find "$reports" -mindepth 1 -maxdepth 1 -type d -name '20??-??-??_*' -mtime +"${COMFYCHECK_KEEP_DAYS:-90}" \
  -exec rm -rf {} +
echo "comfycheck nightly $stamp: exit $rc; report $out/report.html; soak $out/soak (exit $soak_rc); trend $reports/trend.html"
exit "$rc"
