"""A regular (non-editable) install carries everything the commands read at run time.

The configs live in the repository's top-level ``conf/`` and ship as the package
``crossmath.conf``; styles, fonts and prompt sets are read through the package. An editable
install (what the tests run on) would hide a file missing from the wheel, so the wheel itself
is built and read here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import REPO_ROOT


@pytest.mark.slow
def test_the_wheel_ships_configs_styles_fonts_and_prompt_sets(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a clean copy: a build/ folder left in the checkout would hide gaps
    for name in ("crossmath", "conf"):
        shutil.copytree(REPO_ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("crossmath-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    conf = REPO_ROOT / "conf"
    expected = {f"crossmath/conf/{path.relative_to(conf).as_posix()}"
                for path in conf.rglob("*") if path.suffix in (".yaml", ".py")}
    assert expected and expected <= shipped, sorted(expected - shipped)
    package = REPO_ROOT / "crossmath"
    data = {f"crossmath/{path.relative_to(package).as_posix()}" for path in package.rglob("*")
            if path.suffix in (".ttf", ".yaml", ".txt")}
    assert data and data <= shipped, sorted(data - shipped)
    assert not any(name.startswith(("tests/", "conf/", "bench/", "jobs/")) for name in shipped)
    [entry_points] = [name for name in shipped if name.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[console_scripts]\ncrossmath = crossmath.cli:main" in scripts  # the `crossmath` door
