#!/bin/sh
# Entry point of the CI MariaDB stand-in: first start initialises /var/lib/mysql from the
# official image's variables, then mariadbd runs in the foreground as user mysql.
set -eu
if [ "${1#-}" != "$1" ]; then set -- mariadbd "$@"; fi
if [ "$1" != "mariadbd" ] && [ "$1" != "mysqld" ]; then exec "$@"; fi
shift
ROOT_PW=${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}
DB=${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}
USER_NAME=${MARIADB_USER:-${MYSQL_USER:-}}
USER_PW=${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}
DATADIR=/var/lib/mysql
SOCK=/run/mysqld/mysqld.sock
mkdir -p /run/mysqld && chown mysql:mysql "$DATADIR" /run/mysqld
sql_quote() { printf "%s" "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
if [ ! -d "$DATADIR/mysql" ]; then
  [ -n "$ROOT_PW" ] || { echo "entrypoint: set MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD)" >&2; exit 1; }
  echo "entrypoint: initialising $DATADIR" >&2
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db >/dev/null
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket="$SOCK" "$@" &
  pid=$!
  i=0
  until mariadb --socket="$SOCK" -uroot -e 'SELECT 1' >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 120 ] || { echo "entrypoint: temporary server did not start" >&2; exit 1; }
    sleep 0.5
  done
  {
    echo "DELETE FROM mysql.global_priv WHERE User='';"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(sql_quote "$ROOT_PW")';"
    echo "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$(sql_quote "$ROOT_PW")';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "$DB" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$DB\`;"; fi
    if [ -n "$USER_NAME" ] && [ -n "$USER_PW" ]; then
      echo "CREATE USER IF NOT EXISTS '$(sql_quote "$USER_NAME")'@'%' IDENTIFIED BY '$(sql_quote "$USER_PW")';"
      if [ -n "$DB" ]; then echo "GRANT ALL ON \`$DB\`.* TO '$(sql_quote "$USER_NAME")'@'%';"; fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$SOCK" -uroot
  kill -TERM "$pid"; wait "$pid" || true
  echo "entrypoint: initialised" >&2
fi
exec mariadbd --user=mysql --datadir="$DATADIR" "$@"
