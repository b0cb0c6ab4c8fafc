#!/usr/bin/env bash
# Installs the Debian packages a profile needs, only those missing (idempotent).
#   scripts/install-system-deps.sh demo   build deps of mysqlclient only (the demo needs no server, no R)
#   scripts/install-system-deps.sh test   + MariaDB, PostgreSQL, Redis (Celery broker), R with RMySQL, Chromium, nginx (the load balancer test),
#                                           Docker (docker.io) and debootstrap (the image and docker-compose.yaml, run for real)
set -euo pipefail
profile=${1:-test}
# acl: setfacl, for the plugin user's way to the Python interpreter (below)
pkgs=(default-libmysqlclient-dev pkg-config build-essential acl)
if [ "$profile" = test ]; then
  pkgs+=(mariadb-server mariadb-client postgresql redis-server r-base-core r-cran-dbi r-cran-rmysql r-cran-rsqlite chromium nodejs nginx-light docker.io debootstrap)
  # npm for the node runner's lock file: Debian's package only where no npm is there yet (a NodeSource nodejs
  # brings its own npm, and Debian's npm conflicts with it)
  command -v npm >/dev/null || pkgs+=(npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${profile})"
else
  echo "system packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The OS user every script plugin runs as (plugins.runAs / MECCANO_PLUGIN_RUN_AS; docs/security.md): a system
# user with its own group, no home, no login shell, no password. A worker started as root switches to it itself.
plugin_user=${MECCANO_PLUGIN_RUN_AS:-meccano-plugin}
if id -u "$plugin_user" >/dev/null 2>&1; then
  echo "plugin user: $plugin_user exists"
else
  $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$plugin_user"
  echo "plugin user: $plugin_user created"
fi
# Python plugins run in the project's Python: when it is installed below a folder other users cannot enter
# (pyenv under /root, mode 0700), the plugin user gets the right to pass through (x, not to list) each such
# folder on the way to the interpreter, by an ACL entry for that user alone.
here=$(cd "$(dirname "$0")/.." && pwd)
for py in "$here/.venv/bin/python" python3; do
  command -v "$py" >/dev/null 2>&1 || continue
  base=$("$py" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))') || continue
  $SUDO runuser -u "$plugin_user" -- test -x "$base/bin" 2>/dev/null && continue
  dir=""
  for part in $(echo "${base#/}" | tr / ' '); do   # from / down: only the folders it cannot pass yet
    dir="$dir/$part"
    if ! $SUDO runuser -u "$plugin_user" -- test -x "$dir" 2>/dev/null; then
      $SUDO setfacl -m "u:${plugin_user}:x" "$dir"
      echo "plugin user: may pass through $dir (the way to $base)"
    fi
  done
done
