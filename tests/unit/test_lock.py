"""The lock and pyproject.toml agree: every dependency pyproject.toml names
(runtime, every extra, the build backend) is pinned in requirements/dev.lock
at a version its range allows, with hashes. A range raised without
``make lock`` fails here, not on a new machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins(lock: Path) -> dict[str, str]:
    text = lock.read_text()
    pins: dict[str, str] = {}
    for m in re.finditer(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", text, re.MULTILINE):
        pins[canonicalize_name(m[1])] = m[2]
    return pins


def test_every_dependency_is_locked_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        wanted += [Requirement(r) for r in extra]
    wanted += [Requirement(r) for r in project_build_requires()]
    pins = _pins(ROOT / "requirements" / "dev.lock")
    for req in wanted:
        name = canonicalize_name(req.name)
        if name == "tlsecho":  # the package's own extras
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        assert name in pins, f"{req} is not in requirements/dev.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements/dev.lock pins {name}=={pins[name]}, outside {req}: run make lock"
        )


def project_build_requires() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"])


def test_every_lock_has_hashes() -> None:
    for lock in (ROOT / "requirements").glob("*.lock"):
        entries = re.findall(r"^[A-Za-z0-9._-]+==", lock.read_text(), re.MULTILINE)
        hashes = re.findall(
            r"^[A-Za-z0-9._-]+==[^\n]*\\\n\s+--hash=sha256:", lock.read_text(), re.M
        )
        assert entries and len(entries) == len(hashes), lock.name
