#!/usr/bin/env python3
"""Check governed files, archives and orphans; print the Merkle root (wraps `cpctl integrity-check`)."""

import sys
from pathlib import Path

try:
    from control_plane.cli.scripts import run_script
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from control_plane.cli.scripts import run_script

run_script(["integrity-check"], sys.argv[1:])
