"""Templates shipped as package data (``plugin/``: what ``cpctl plugin new`` scaffolds)."""
