"""The files served with the app (example photographs, the style sheet), in the repository's assets/ folder."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "assets"
