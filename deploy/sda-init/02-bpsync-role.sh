#!/bin/sh
# The role bpsync logs in as: the SDA's group roles `sync` and `base` with their grants (the SDA's
# postgresql/initdb.d/04_grants.sql), and the login role SDA_DB_SYNC_USER holding both, with the
# password SDA_DB_SYNC_PASSWORD (both from .env), plus SELECT on sda.datasets, which the daily
# audit_sync and `bpsync backfill` need (README, "Database grants"). It reads, and writes nothing.
# Run once by the postgres image's entrypoint, after 01-schema.sql, when the sda-db volume is empty.
set -eu
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v login="$SDA_DB_SYNC_USER" -v password="$SDA_DB_SYNC_PASSWORD" <<'SQL'
CREATE ROLE sync;
CREATE ROLE base;
GRANT USAGE ON SCHEMA sda TO base;
GRANT SELECT ON sda.dbschema_version TO base;
GRANT USAGE ON SCHEMA sda TO sync;
GRANT SELECT ON sda.files TO sync;
GRANT SELECT ON sda.file_dataset TO sync;
GRANT SELECT ON sda.file_event_log TO sync;
GRANT SELECT ON sda.checksums TO sync;
CREATE ROLE :"login" LOGIN PASSWORD :'password';
GRANT sync, base TO :"login";
GRANT SELECT ON sda.datasets TO :"login";
SQL
