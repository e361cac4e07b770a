#!/bin/sh
# Initialises $PGDATA on first start (user, database, client authentication), then runs postgres.
# Arguments that start with "-" are postgres options, as with Docker Hub's image.
set -eu
case ${1:-postgres} in -*) set -- postgres "$@" ;; esac
[ $# -gt 0 ] || set -- postgres
[ "$1" = postgres ] || exec "$@"
shift

user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "postgres: set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust for a dev database" >&2
    exit 1
  fi
  mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  pwopt=
  [ -z "${POSTGRES_PASSWORD:-}" ] || pwopt=--pwfile=$pwfile
  initdb --username="$user" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust \
    --auth-host="$auth" $pwopt -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf "host all all all %s\n" "$auth" >>"$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  # The database, created through the socket only, before any client can connect.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$database" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -q \
      -c "CREATE DATABASE \"$database\"" >/dev/null
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres: initialised $PGDATA (user $user, database $database, host auth $auth)"
fi
exec postgres -D "$PGDATA" "$@"
