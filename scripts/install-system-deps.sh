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
