"""Packages are discovered, never listed: a new subpackage of dmstore ships in the wheel without
an edit here. The SQL and the schemas live at the top of the repository (sql/, schemas/) and
install as dmstore.sql and dmstore.schemas (package-dir in pyproject.toml)."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["dmstore", "dmstore.*"]) + ["dmstore.sql", "dmstore.schemas"])
