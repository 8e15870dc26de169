# Sourced by .ci/run: makes sure a PostgreSQL server is running for the tests
# and exports PGW_TEST_DATABASE_URL. Installs PostgreSQL from Debian's
# packages when it is missing. The cluster is a private, throwaway one
# (trust auth on 127.0.0.1 only, fsync off) under $PGW_PGDATA.

PGW_PGPORT="${PGW_PGPORT:-55432}"
PGW_PGDATA="${PGW_PGDATA:-/tmp/pgw-postgres}"

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt_install postgresql
fi
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

# PostgreSQL refuses to run as root: run it as the postgres user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ ! -f "$PGW_PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGW_PGDATA"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGW_PGDATA"
  as_pg "$PGBIN/initdb" -D "$PGW_PGDATA" -A trust -U pgw >/dev/null
fi
if ! as_pg "$PGBIN/pg_ctl" -D "$PGW_PGDATA" status >/dev/null 2>&1; then
  echo "== starting PostgreSQL on 127.0.0.1:$PGW_PGPORT"
  as_pg "$PGBIN/pg_ctl" -D "$PGW_PGDATA" -l "$PGW_PGDATA/server.log" -w \
    -o "-p $PGW_PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
fi
export PGW_TEST_DATABASE_URL="postgres://pgw@127.0.0.1:$PGW_PGPORT/postgres"
