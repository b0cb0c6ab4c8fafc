#!/bin/bash
# redis:7.4's semantics: options or `redis-server` run the server as the redis user; anything else as given.
set -euo pipefail
if [ "${1:0:1}" = "-" ]; then set -- redis-server "$@"; fi
chown -R redis:redis /data 2>/dev/null || true
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then exec setpriv --reuid=redis --regid=redis --init-groups "$@"; fi
exec "$@"
