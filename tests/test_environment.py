"""environment.yml (conda), pyproject.toml (pip) and constraints.txt describe ONE environment.

Conda is not installable on CI, so these static checks keep the files honest.
"""
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENV = yaml.safe_load((ROOT / "environment.yml").read_text())


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line is not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_conda_python_matches_requires_python():
    pythons = [d for d in ENV["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pythons == ["python=3.11"]
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains("3.11.7")
    assert not SpecifierSet(PYPROJECT["project"]["requires-python"]).contains("3.12.0")


def test_conda_installs_the_project_with_the_same_pins():
    conda_pkgs = [d for d in ENV["dependencies"] if isinstance(d, str)]
    assert {re.split(r"[=<>]", d)[0] for d in conda_pkgs} == {"python", "pip"}, \
        "conda packages besides python/pip would drift from pyproject.toml"
    pip_section = next(d["pip"] for d in ENV["dependencies"] if isinstance(d, dict))
    assert pip_section == ["-c constraints.txt", "-e .[cpu]"]


def test_every_dependency_is_pinned_within_its_range():
    pins = _pins()
    extras = PYPROJECT["project"]["optional-dependencies"]
    for spec in PYPROJECT["project"]["dependencies"] + extras["cpu"] + extras["gpu"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no exact version in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}"


def test_makefile_installs_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert '-c constraints.txt -e ".[$(TF)]"' in makefile and "TF ?= cpu" in makefile
    assert "ipykernel install --sys-prefix" in makefile


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme.split("\n## ")[0], "README must open with the two commands"
    assert "make run" in readme.split("\n## ")[0]
    assert "make test" in (ROOT / ".ci/run").read_text()
