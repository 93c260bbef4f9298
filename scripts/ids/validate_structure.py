#!/usr/bin/env python3
"""Check identity card files: names, YAML schema, ULIDs, kinds, paths, one artifact per id
(wraps `cpctl ids validate --only structure`)."""

import sys
from pathlib import Path

try:
    from control_plane.cli.scripts import run_script
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from control_plane.cli.scripts import run_script

run_script(["ids", "validate", "--only", "structure"], sys.argv[1:])
