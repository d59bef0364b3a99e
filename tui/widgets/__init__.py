"""Widgets the screens are built from, one per file."""
