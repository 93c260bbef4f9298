#!/usr/bin/env python3
"""Pack files under the root into packages_store/ and register them (wraps `cpctl pack`)."""

import sys
from pathlib import Path

try:
    from control_plane.cli.scripts import run_script
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from control_plane.cli.scripts import run_script

run_script(["pack"], sys.argv[1:])
