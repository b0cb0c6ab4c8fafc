#!/bin/bash
# postgres:16's entrypoint semantics on Debian's PostgreSQL 15: POSTGRES_USER (postgres), POSTGRES_PASSWORD
# (required), POSTGRES_DB (= user), PGDATA, PGPORT, POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD
# (scram-sha-256), /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz; initdb only on an empty PGDATA.
set -Eeuo pipefail

# options only: they are the server's
if [ "${1:0:1}" = "-" ]; then set -- postgres "$@"; fi
# anything but the server runs as given
if [ "$1" != postgres ]; then exec "$@"; fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

# as the postgres user, or an arbitrary `user:` (official: PGDATA must then be writable by it)
mkdir -p "$PGDATA"
chmod 700 "$PGDATA" 2>/dev/null || :

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
    echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  # initdb needs the current uid in passwd: an arbitrary `user:` gets one from nss_wrapper (as official)
  if ! getent passwd "$(id -u)" >/dev/null; then
    export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libnss_wrapper.so
    NSS_WRAPPER_PASSWD=$(mktemp); NSS_WRAPPER_GROUP=$(mktemp)
    export NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
    echo "postgres:x:$(id -u):$(id -g):PostgreSQL:$PGDATA:/bin/false" > "$NSS_WRAPPER_PASSWD"
    echo "postgres:x:$(id -g):" > "$NSS_WRAPPER_GROUP"
  fi
  pwfile=$(mktemp)
  pwarg=()
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"; pwarg=(--pwfile="$pwfile"); fi
  # shellcheck disable=SC2086
  initdb -D "$PGDATA" --username="$user" "${pwarg[@]}" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-}
  rm -f "$pwfile"
  if [ -n "${LD_PRELOAD:-}" ]; then rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"; unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP; fi
  # as official: every host may connect with a password; the server listens on every address
  printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

  # temporary server to create POSTGRES_DB and run the init scripts: no TCP, and (unlike official) its socket
  # in a private directory, so the healthcheck (pg_isready) does not pass before the real server is up
  initsock=$(mktemp -d)
  export PGHOST=$initsock
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$initsock" start
  psql=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc -U "$user")
  if [ "$db" != postgres ]; then
    "${psql[@]}" -d postgres -v db="$db" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) echo "running $f"; "${psql[@]}" -d "$db" -f "$f" ;;
      *.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql[@]}" -d "$db" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGHOST; rmdir "$initsock"
  echo "PostgreSQL init process complete; ready for start up."
else
  echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
fi
exec "$@"
