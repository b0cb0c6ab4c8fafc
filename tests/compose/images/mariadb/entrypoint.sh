#!/bin/bash
# mysql:8.4's entrypoint semantics on Debian's MariaDB 10.11: MYSQL_ROOT_PASSWORD (required), MYSQL_ROOT_HOST (%),
# MYSQL_DATABASE, MYSQL_USER/MYSQL_PASSWORD (ALL on MYSQL_DATABASE), TZ, MYSQL_TCP_PORT (3306),
# /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz; a command of options only is the server's options;
# init only on an empty datadir.
set -Eeuo pipefail

if [ "${1:0:1}" = "-" ]; then set -- mariadbd "$@"; fi
if [ "$1" != mariadbd ] && [ "$1" != mysqld ]; then exec "$@"; fi
shift

datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock
args=(--datadir="$datadir" --socket="$socket" --port="${MYSQL_TCP_PORT:-3306}" --bind-address=0.0.0.0
      --skip-log-bin --skip-name-resolve)
if [ "$(id -u)" = 0 ]; then
  # official: the server runs as mysql; any other `user:` runs it as that user (datadir must be its)
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  chown -R mysql:mysql "$datadir"
  args=(--user=mysql "${args[@]}")
fi

sql_string() { local s=${1//\\/\\\\}; s=${s//\'/\\\'}; printf "'%s'" "$s"; }
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

if [ ! -d "$datadir/mysql" ]; then
  : "${MYSQL_ROOT_PASSWORD:?database is uninitialized and MYSQL_ROOT_PASSWORD is not set}"
  echo "Initializing database files"
  install_user=(); [ "$(id -u)" = 0 ] && install_user=(--user=mysql)
  mariadb-install-db "${install_user[@]}" --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve >/dev/null
  mariadbd "${args[@]}" --skip-networking &
  pid=$!
  for _ in $(seq 120); do
    mariadb-admin --socket="$socket" -uroot ping >/dev/null 2>&1 && break
    kill -0 "$pid" || { echo "temporary server failed" >&2; exit 1; }
    sleep 0.5
  done
  root_host=${MYSQL_ROOT_HOST:-%}
  pw=$(sql_string "$MYSQL_ROOT_PASSWORD")
  {
    # as official: only root@localhost survives mariadb-install-db (which also makes root@127.0.0.1, @::1 and
    # @<hostname> WITHOUT a password, and anonymous accounts that would shadow 'user'@'%' locally)
    echo "DELETE FROM mysql.global_priv WHERE Host <> 'localhost' OR User = '';"
    echo "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost' OR User = '';"
    echo "FLUSH PRIVILEGES;"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $pw;"
    if [ "$root_host" != localhost ]; then
      echo "CREATE USER IF NOT EXISTS 'root'@$(sql_string "$root_host") IDENTIFIED BY $pw;"
      echo "GRANT ALL ON *.* TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;"
    fi
    if [ -n "${MYSQL_DATABASE:-}" ]; then echo "CREATE DATABASE IF NOT EXISTS $(sql_ident "$MYSQL_DATABASE");"; fi
    if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
      echo "CREATE USER $(sql_string "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_string "$MYSQL_PASSWORD");"
      if [ -n "${MYSQL_DATABASE:-}" ]; then
        echo "GRANT ALL ON $(sql_ident "$MYSQL_DATABASE").* TO $(sql_string "$MYSQL_USER")@'%';"
      fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$socket" -uroot --binary-mode
  export MYSQL_PWD=$MYSQL_ROOT_PASSWORD   # the init scripts' client: root, password off the command line
  mysql=(mariadb --socket="$socket" -uroot)
  [ -n "${MYSQL_DATABASE:-}" ] && mysql+=("$MYSQL_DATABASE")
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) echo "running $f"; "${mysql[@]}" < "$f" ;;
      *.sql.gz) echo "running $f"; gunzip -c "$f" | "${mysql[@]}" ;;
    esac
  done
  mariadb-admin --socket="$socket" -uroot shutdown
  unset MYSQL_PWD
  wait "$pid" || true
  echo "MariaDB init process done. Ready for start up."
fi
exec mariadbd "${args[@]}" "$@"
