#!/bin/bash
# mysql:8.4's semantics: MYSQL_ROOT_PASSWORD, MYSQL_DATABASE, MYSQL_USER/PASSWORD, TZ, MYSQL_TCP_PORT; options
# given as the command are server options; init once on an empty datadir.
set -euo pipefail
if [ "${1:0:1}" = "-" ] || [ $# -eq 0 ]; then set -- mariadbd "$@"; fi
if [ "$1" != mariadbd ] && [ "$1" != mysqld ]; then exec "$@"; fi
shift
port=${MYSQL_TCP_PORT:-3306}
args=(--user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock --port="$port"
      --bind-address=0.0.0.0 --skip-log-bin --skip-name-resolve)
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld /var/lib/mysql
if [ ! -d /var/lib/mysql/mysql ]; then
  : "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}"
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
  mariadbd "${args[@]}" --skip-networking &
  pid=$!
  for _ in $(seq 60); do mariadb-admin --socket=/run/mysqld/mysqld.sock -uroot ping >/dev/null 2>&1 && break; sleep 0.5; done
  {
    printf "ALTER USER 'root'@'localhost' IDENTIFIED BY '%s';\n" "$MYSQL_ROOT_PASSWORD"
    printf "CREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO 'root'@'%%' WITH GRANT OPTION;\n" "$MYSQL_ROOT_PASSWORD"
    if [ -n "${MYSQL_DATABASE:-}" ]; then printf 'CREATE DATABASE IF NOT EXISTS `%s`;\n' "$MYSQL_DATABASE"; fi
    if [ -n "${MYSQL_USER:-}" ]; then
      printf "CREATE USER '%s'@'%%' IDENTIFIED BY '%s';\n" "$MYSQL_USER" "$MYSQL_PASSWORD"
      [ -n "${MYSQL_DATABASE:-}" ] && printf "GRANT ALL ON \`%s\`.* TO '%s'@'%%';\n" "$MYSQL_DATABASE" "$MYSQL_USER"
    fi
    printf "FLUSH PRIVILEGES;\n"
  } | mariadb --socket=/run/mysqld/mysqld.sock -uroot
  mariadb-admin --socket=/run/mysqld/mysqld.sock -uroot -p"$MYSQL_ROOT_PASSWORD" shutdown
  wait "$pid" || true
fi
if [ -n "${TZ:-}" ]; then args+=(--default-time-zone=SYSTEM); fi
exec mariadbd "${args[@]}" "$@"
