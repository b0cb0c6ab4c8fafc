#!/usr/bin/env bash
# Creates .venv: the runtime pins (requirements.txt) and the test/bench tools (requirements-dev.txt),
# once per change of either list, then installs this checkout's package `meccano` (include/meccano,
# pyproject.toml) in editable mode, so dags/ and the tests import it without any PYTHONPATH (and Airflow
# finds its plugin through the package's entry point).
# An editable install points at ONE checkout: a .venv shared by several checkouts imports the one
# that ran this script last (re-run it in the checkout you work in).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "virtualenv: requirements up to date"
else
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-dev.txt
  echo "$want" > "$stamp"
  echo "virtualenv: installed $(grep -c '^[A-Za-z]' requirements.txt) runtime + $(grep -c '^[A-Za-z]' requirements-dev.txt) dev pins"
fi
root=$(pwd -P)
here=$root/include/meccano/__init__.py
got=$(cd / && "$root/.venv/bin/python" -c "import meccano; print(meccano.__file__)" 2>/dev/null || true)
# reinstalled when the checkout or pyproject.toml changes: the installed metadata carries the package's
# entry points (Airflow finds the web view's plugin through `airflow.plugins`)
package_stamp=.venv/.package.sha
package_want=$( (echo "$root"; cat pyproject.toml) | sha256sum | cut -d' ' -f1)
if [ "$got" != "$here" ] || [ "$(cat "$package_stamp" 2>/dev/null)" != "$package_want" ]; then
  .venv/bin/python -m pip install -q --no-deps -e .  # not .venv/bin/pip: a copied .venv keeps its #! line
  echo "$package_want" > "$package_stamp"
  echo "virtualenv: package meccano installed from $root (editable)"
fi
# setuptools leaves a copy of the metadata in include/*.egg-info, and the editable install puts include/ on
# sys.path: Airflow would then see the distribution twice and load its plugin twice ("Plugin 'meccano_web'
# already registered" as a plugin import error). The dist-info in .venv is the one that counts.
rm -rf include/*.egg-info
