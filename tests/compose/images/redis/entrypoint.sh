#!/bin/bash
# redis:7.4's docker-entrypoint.sh semantics on Debian's Redis 7.0: a first argument that is an option or a
# *.conf file means redis-server; redis-server started as root runs as the redis user, after taking
# ownership of what in the working directory (/data) is not the redis user's; anything else (sh -c ...)
# runs as given, as the container's user.
set -Eeuo pipefail
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$BASH_SOURCE" "$@"
fi
# official: files private to the server unless the operator set a umask
um=$(umask); if [ "$um" = 0022 ]; then umask 0077; fi
exec "$@"
