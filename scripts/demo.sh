#!/usr/bin/env bash
# The embedded demo: Airflow + SQLite IOTDB + gateway simulator on 127.0.0.1. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m meccano demo "$@"
