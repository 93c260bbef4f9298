#!/usr/bin/env python3
"""Fail when a committed identity card changed or disappeared, a card is not in the identity
ledger, or that ledger was rewritten (wraps `cpctl ids validate --only immutability`)."""

import sys
from pathlib import Path

try:
    from control_plane.cli.scripts import run_script
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from control_plane.cli.scripts import run_script

run_script(["ids", "validate", "--only", "immutability"], sys.argv[1:])
