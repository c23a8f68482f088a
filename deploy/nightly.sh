#!/usr/bin/env bash
# The nightly run from a checkout, for cron, the systemd timer and Windows' Task Scheduler (through wsl.exe):
# sets the checkout up on first use, then runs `comfycheck nightly` (an installed comfycheck runs that directly).
#
#   deploy/nightly.sh PROFILE [pytest args ...]     (the checks default to: -m "not selftest")
#
# The checklist, then a short soak (the profile's [soak] nightly_duration), the run kept in the history, the trend
# page refreshed. Leaves: $COMFYCHECK_REPORTS/<YYYY-MM-DD_HHMMSS>/{report.html, junit.xml, measurements.json,
# pytest.log, soak/report.html, soak.log} and $COMFYCHECK_REPORTS/trend.html.
#   COMFYCHECK_REPORTS     where the dated folders go (default: <checkout>/reports/nightly)
#   COMFYCHECK_KEEP_DAYS   dated folders older than this are removed (default 90; the history keeps every run)
#   COMFYCHECK_PROMETHEUS  e.g. /var/lib/prometheus/node-exporter/comfycheck.prom
# Destructive checks (the watchdog kill) and load runs run only where the profile allows them.
# Exit status: the checks' (0 every check passed, 1 some failed, 2+ the run could not be made), else the soak's.
set -uo pipefail
checkout=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 1 ]; then
  echo "usage: $0 PROFILE [pytest args ...]" >&2
  exit 2
fi
profile=$(realpath -m -- "$1")
shift
"$checkout/run" setup >/dev/null || exit 2
exec "$checkout/.venv/bin/comfycheck" nightly --profile "$profile" "$@"
