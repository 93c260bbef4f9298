#!/usr/bin/env bash
# The main job on a scratch root: init -> pack -> install -> integrity check -> ledger verify.
# Touches nothing tracked: everything happens in a fresh temporary directory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
artifact=frameworks/FMWK-100_agent_development_standard.md
root=$(mktemp -d)                         # a fresh scratch root under $TMPDIR
cpctl() { command cpctl --root "$root" "$@"; }
set -x
cpctl init
mkdir -p "$root/frameworks"
cp "$here/$artifact" "$root/$artifact"
cpctl pack --src "$root/$artifact" --id PKG-FMWK-100 --version 1.0.0
rm "$root/$artifact"                      # as if on a fresh machine: only the archive remains
cpctl install --id PKG-FMWK-100
cpctl integrity-check
cpctl ledger verify
(cd "$root/packages_store" && sha256sum -c FMWK-100_agent_development_standard.tar.gz.sha256)
set +x
echo "demo root: $root (pack, install and integrity check passed)"
