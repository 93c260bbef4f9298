"""Seed-compatible module names; everything lives in the ``control_plane`` package."""
