"""The state directories written by earlier releases (tests/data/upgrade-<version>/, made by
tests/data/make_upgrade_state.py), for the upgrade and restore tests."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
RELEASES = sorted(p.name for p in DATA.glob("upgrade-*") if (p / "expected.json").is_file())
