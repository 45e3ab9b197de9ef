"""The shipped scenarios are package data: found inside the installed package (not the source
tree), listed by ``ecosim list``, and built into the wheel (the slow test)."""
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

import ecosim
from ecosim.cli import SCENARIOS, main, scenario_path

ROOT = Path(__file__).resolve().parent.parent


def shipped() -> list[str]:
    return sorted(p.name[:-5] for p in (files("ecosim") / "scenarios").iterdir() if p.name.endswith(".yaml"))


def test_scenarios_are_in_the_package():
    names = shipped()
    assert {"quickstart", "owl_chain", "misalignment_drift", "fan_in", "rotating_bases",
            "accumulate_vs_replace", "real_data_dilution", "mlp_ecosystem"} <= set(names)
    assert SCENARIOS == Path(ecosim.__file__).resolve().parent / "scenarios"
    for n in names:
        assert Path(scenario_path(n)).resolve() == (SCENARIOS / f"{n}.yaml").resolve()


def test_list_shows_every_shipped_scenario(capsys):
    assert main(["list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert listed == shipped()


def test_package_data_declares_the_scenarios():
    tomllib = pytest.importorskip("tomllib")
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "scenarios/*.yaml" in conf["tool"]["setuptools"]["package-data"]["ecosim"]


def test_top_level_scenarios_path_still_works():
    """People and docs use ``scenarios/quickstart.yaml`` in a checkout: a link to the package's."""
    top = ROOT / "scenarios"
    if not top.exists():
        pytest.skip("not a source checkout")
    assert top.resolve() == SCENARIOS.resolve()
    assert (top / "quickstart.yaml").is_file()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for ref in re.findall(r"\bscenarios/(\w+\.ya?ml)", doc.read_text()):
            assert (top / ref).is_file(), f"{doc.name} names scenarios/{ref}"


@pytest.mark.slow
def test_wheel_carries_the_scenarios(tmp_path):
    """Build a wheel from a copy of the source (no build/ left in the checkout) and look inside."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(ROOT / "ecosim", src / "ecosim", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(src)], check=True)
    (whl,) = (tmp_path / "dist").glob("ecosim-*.whl")
    inside = {n for n in zipfile.ZipFile(whl).namelist() if n.startswith("ecosim/scenarios/")}
    assert inside == {f"ecosim/scenarios/{n}.yaml" for n in shipped()}
