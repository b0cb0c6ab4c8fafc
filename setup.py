"""Puts the DAG file (dags/) and the shipped plugins (meccano_plugins/) into the built package, under
``meccano/shipped/``, so a wheel carries them: ``python -m meccano install-dags`` copies them into an Airflow's
DAGs folder (meccano.cli.install_dags). The checkout keeps one copy of each; an editable install reads them
from the checkout itself. Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"dags": "dags", "meccano_plugins": "meccano_plugins"}  # checkout folder -> meccano/shipped/<name>


class BuildWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "meccano" / "shipped"
        for source, name in SHIPPED.items():
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(ROOT / source, target / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildWithShipped})
