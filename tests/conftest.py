"""Shared pytest set-up. R is always installed by `make setup`, so nothing here skips on R."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")  # figures in tests never need a display
