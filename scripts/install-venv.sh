#!/usr/bin/env bash
# Creates .venv for `make demo` or `make test`, then installs this checkout's package `meccano` (include/meccano,
# pyproject.toml) in editable mode, so dags/ and the tests import it without any PYTHONPATH (and Airflow finds its
# plugin through the package's entry point).
#   scripts/install-venv.sh demo   the runtime pins only (requirements.txt): what the product needs
#   scripts/install-venv.sh [test] the runtime pins and the test/bench tools (requirements-dev.txt includes
#                                  requirements.txt): pytest, moto, playwright, ruff, mypy ...
# Each list is installed once per change of it (a stamp in .venv). A test venv serves the demo too; a demo venv
# gets the tools the first time `make test` runs.
# An editable install points at ONE checkout: a .venv shared by several checkouts imports the one
# that ran this script last (re-run it in the checkout you work in).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mode=${1:-test}
case "$mode" in
  demo) lists=(requirements.txt) ;;
  test) lists=(requirements.txt requirements-dev.txt) ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac
test_stamp=.venv/.requirements.sha
test_want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
stamp=.venv/.requirements-$mode.sha
[ "$mode" = test ] && stamp=$test_stamp
want=$(cat "${lists[@]}" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "virtualenv: requirements up to date ($mode)"
elif [ "$mode" = demo ] && [ -f "$test_stamp" ] && [ "$(cat "$test_stamp")" = "$test_want" ]; then
  echo "virtualenv: requirements up to date (a test venv: the runtime pins and the test tools)"
else
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # the venv's own interpreter, never .venv/bin/pip: a copied venv's scripts still name the original's interpreter
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "${lists[-1]}"
  echo "$want" > "$stamp"
  if [ "$mode" = demo ]; then
    echo "virtualenv: installed $(grep -c '^[A-Za-z]' requirements.txt) runtime pins (demo: no test tools)"
  else
    echo "virtualenv: installed $(grep -c '^[A-Za-z]' requirements.txt) runtime + $(grep -c '^[A-Za-z]' requirements-dev.txt) dev pins"
  fi
fi
root=$(pwd -P)
here=$root/include/meccano/__init__.py
got=$(cd / && "$root/.venv/bin/python" -c "import meccano; print(meccano.__file__)" 2>/dev/null || true)
# reinstalled when the checkout, pyproject.toml or requirements.txt (read into its metadata) changes: the installed
# metadata carries the package's entry points (Airflow finds the web view's plugin through `airflow.plugins`)
package_stamp=.venv/.package.sha
package_want=$( (echo "$root"; cat pyproject.toml requirements.txt) | sha256sum | cut -d' ' -f1)
if [ "$got" != "$here" ] || [ "$(cat "$package_stamp" 2>/dev/null)" != "$package_want" ]; then
  .venv/bin/python -m pip install -q --no-deps -e .  # not .venv/bin/pip: a copied .venv keeps its #! line
  echo "$package_want" > "$package_stamp"
  echo "virtualenv: package meccano installed from $root (editable)"
fi
# setuptools leaves a copy of the metadata in include/*.egg-info, and the editable install puts include/ on
# sys.path: Airflow would then see the distribution twice and load its plugin twice ("Plugin 'meccano_web'
# already registered" as a plugin import error). The dist-info in .venv is the one that counts.
rm -rf include/*.egg-info
