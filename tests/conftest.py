"""Shared pytest configuration: keep plots headless and temp files out of the tree."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
