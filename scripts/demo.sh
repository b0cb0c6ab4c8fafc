#!/usr/bin/env bash
# The embedded demo: Airflow + SQLite IOTDB + gateway simulator on 127.0.0.1. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
# the demo's files (task logs, Airflow's airflow.db) are the worker's alone: the plugin user is another local user
umask 077
exec .venv/bin/python -m meccano demo "$@"
