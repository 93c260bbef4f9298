"""``python -m control_plane`` runs ``cpctl``."""

from control_plane.cli.main import main

main()
