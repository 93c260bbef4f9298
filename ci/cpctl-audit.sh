#!/usr/bin/env bash
# Audit a control plane root the way CI should: validate the registries, check every governed
# file, verify the ledger -- and, when the root has control_plane.lock, report drift from it;
# when it has plugins.json, lint that component manifest.
# Each check's JSON report goes to REPORT_DIR; every check always runs.
#
#   usage: cpctl-audit.sh [ROOT] [REPORT_DIR]
#     ROOT        default: $CONTROL_PLANE_ROOT, else the current directory
#     REPORT_DIR  default: $CPCTL_AUDIT_REPORTS, else cpctl-reports under $RUNNER_TEMP or $TMPDIR
#                 (outside the root: a report inside a root whose integrity scope is "**" is an
#                 orphan for the next run, unless [integrity] exclude lists it)
#   environment: CPCTL (the cpctl to run; default: cpctl on PATH), CONTROL_PLANE_TOKEN
#                (when the root requires authentication: a token whose role may verify)
#
# Writes REPORT_DIR/{validate,integrity-check,ledger-verify[,drift][,plugins-lint]}.json (each one JSON
# document) and a .stderr file beside each, after all ran, so they never disturb this run's checks.
# Exit 0 when every check passed; otherwise the exit code of the first check that failed
# (1 findings, 2 usage, 3 denied, ...), after naming every one.
set -uo pipefail

root=${1:-${CONTROL_PLANE_ROOT:-.}}
reports=${2:-${CPCTL_AUDIT_REPORTS:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/cpctl-reports}}
cpctl=${CPCTL:-cpctl}

if ! command -v "$cpctl" >/dev/null 2>&1; then
    echo "cpctl-audit: '$cpctl' not found; pip install the control-plane package first" >&2
    exit 2
fi
if [ ! -f "$root/control_plane.toml" ]; then
    echo "cpctl-audit: $root is not a control plane root (no control_plane.toml)" >&2
    exit 2
fi
mkdir -p "$reports" || exit 2
staging=$(mktemp -d) || exit 2
trap 'rm -rf "$staging"' EXIT

failed=()
first_code=0

# summarise REPORT: up to 20 findings of a JSON report, one line each (errors are on stderr).
summarise() {
    command -v python3 >/dev/null 2>&1 || return 0
    python3 - "$1" <<'PY' 2>/dev/null || true
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as handle:
        report = json.load(handle)
except (OSError, ValueError):
    sys.exit(0)
lines = [f"{kind}: {path}" for kind in ("mismatched", "missing", "orphans")
         for path in report.get(kind) or [] if isinstance(path, str)]
lines += [f"{item.get('subject')}: {item.get('message')} [{item.get('rule') or item.get('kind')}]"
          for key in ("findings", "drift") for item in report.get(key) or []
          if isinstance(item, dict)]
for line in lines[:20]:
    print("    " + line)
if len(lines) > 20:
    print(f"    ... and {len(lines) - 20} more in the report")
PY
}

# audit NAME ARGS...: run one check with --json, keep its report, remember a failure.
audit() {
    local name=$1
    shift
    local code=0
    "$cpctl" --root "$root" "$@" --json >"$staging/$name.json" 2>"$staging/$name.stderr" || code=$?
    if [ "$code" -eq 0 ]; then
        echo "cpctl-audit: ok      cpctl $*"
    else
        echo "cpctl-audit: FAILED  cpctl $* (exit $code; report: $reports/$name.json)" >&2
        sed 's/^/    /' "$staging/$name.stderr" >&2
        summarise "$staging/$name.json" >&2
        failed+=("$name (exit $code)")
        [ "$first_code" -ne 0 ] || first_code=$code
    fi
}

audit validate validate
audit integrity-check integrity-check
audit ledger-verify ledger verify
# A locked root must also match its lock (a root without control_plane.lock is not asked to).
if [ -f "$root/control_plane.lock" ]; then
    audit drift drift
fi
# A root that keeps a component manifest must keep it current.
if [ -f "$root/plugins.json" ]; then
    audit plugins-lint plugins lint
fi
# Replace this script's reports from an earlier run, so none is left stale.
rm -f "$reports"/{validate,integrity-check,ledger-verify,drift,plugins-lint}.{json,stderr}
cp "$staging"/* "$reports"/ || exit 2

if [ "${#failed[@]}" -ne 0 ]; then
    echo "cpctl-audit: failed: ${failed[*]}" >&2
    exit "$first_code"
fi
echo "cpctl-audit: all checks passed on $root; reports in $reports"
