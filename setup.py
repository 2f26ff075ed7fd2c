"""Packaging beyond pyproject.toml: the top-level ``conf/`` folder ships as ``crossmath.conf``.

The configs stay where the project layout puts them (``conf/`` beside ``crossmath/``), and
installs (regular or editable) map them into the package, so Hydra finds them through
``pkg://crossmath.conf`` wherever the command is run from.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["crossmath", "crossmath.*"]),
              "crossmath.conf", "crossmath.conf.score"],
    package_dir={"crossmath.conf": "conf", "crossmath.conf.score": "conf/score"},
)  # their YAML files: [tool.setuptools.package-data] in pyproject.toml
