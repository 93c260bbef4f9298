#!/usr/bin/env python3
"""Rebuild ids/registry.yaml from the committed identity cards; --check only compares
(wraps `cpctl ids build-registry`)."""

import sys
from pathlib import Path

try:
    from control_plane.cli.scripts import run_script
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from control_plane.cli.scripts import run_script

run_script(["ids", "build-registry"], sys.argv[1:])
