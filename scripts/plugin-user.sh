#!/usr/bin/env bash
# The OS user every script plugin runs as (plugins.runAs / MECCANO_PLUGIN_RUN_AS; docs/security.md), and its way
# to what a script needs on this host. Idempotent; run by `make demo` and `make test` after the venv exists.
#   scripts/plugin-user.sh                 the user, and passage to the interpreters and to this checkout
#   scripts/plugin-user.sh --passage DIR   also passage to DIR (the demo's IOTDB folder under --state)
# Passage: where a folder on the way cannot be entered by other users (pyenv under /root, mode 0700; a
# checkout or a pytest folder below one), the plugin user alone gets the right to pass through it (x, not to
# list it) by an ACL entry. It reads only what is world-readable below.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
plugin_user=${MECCANO_PLUGIN_RUN_AS:-meccano-plugin}
if id -u "$plugin_user" >/dev/null 2>&1; then
  echo "plugin user: $plugin_user exists"
else
  $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$plugin_user"
  echo "plugin user: $plugin_user created"
fi

passage() {  # $1: a folder the plugin user must reach
  local target=$1 dir="" part
  $SUDO runuser -u "$plugin_user" -- test -x "$target" 2>/dev/null && return 0
  for part in $(echo "${target#/}" | tr / ' '); do   # from / down: only the folders it cannot pass yet
    dir="$dir/$part"
    if ! $SUDO runuser -u "$plugin_user" -- test -x "$dir" 2>/dev/null; then
      $SUDO setfacl -m "u:${plugin_user}:x" "$dir"
      echo "plugin user: may pass through $dir (the way to $target)"
    fi
  done
}

here=$(cd "$(dirname "$0")/.." && pwd)
# the interpreters scripts run with: the venv's (in this checkout) and the Python it was made from
for py in "$here/.venv/bin/python" python3; do
  command -v "$py" >/dev/null 2>&1 || continue
  base=$("$py" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))') || continue
  passage "$base/bin"
done
[ -d "$here/.venv/bin" ] && passage "$here/.venv/bin"
passage "$here"   # the demo's default state folder (.demo) lives here
if [ "${1:-}" = --passage ] && [ -n "${2:-}" ]; then
  mkdir -p "$2"
  passage "$(cd "$2" && pwd)"
fi
