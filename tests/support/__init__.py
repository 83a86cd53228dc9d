"""Helpers shared by the tests: fake backends, serving, raw API calls, meters."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
