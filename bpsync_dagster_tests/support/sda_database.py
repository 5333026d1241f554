"""A throw-away SDA database on the local PostgreSQL, seeded the way ingest and mapper would."""

from contextlib import closing
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn

SERVER_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

SDA_DDL = """
CREATE SCHEMA sda;

CREATE TYPE sda.checksum_algorithm AS ENUM ('MD5', 'SHA256', 'SHA384', 'SHA512');
CREATE TYPE sda.checksum_source AS ENUM ('UPLOADED', 'ARCHIVED', 'UNENCRYPTED');

CREATE TABLE sda.dbschema_version (
    version              INTEGER PRIMARY KEY,
    applied              TIMESTAMP WITH TIME ZONE DEFAULT now(),
    description          VARCHAR(1024)
);

CREATE TABLE sda.datasets (
    id                   SERIAL PRIMARY KEY,
    stable_id            TEXT UNIQUE,
    title                TEXT,
    description          TEXT,
    created_at           TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE sda.files (
    id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    stable_id            TEXT UNIQUE,
    submission_user      TEXT,
    submission_location  TEXT,
    submission_file_path TEXT DEFAULT '' NOT NULL,
    submission_file_size BIGINT,
    archive_location     TEXT,
    archive_file_path    TEXT DEFAULT '' NOT NULL,
    archive_file_size    BIGINT,
    decrypted_file_size  BIGINT,
    backup_location      TEXT,
    backup_path          TEXT,
    header               TEXT,
    encryption_method    TEXT,
    created_by           NAME DEFAULT CURRENT_USER,
    last_modified_by     NAME DEFAULT CURRENT_USER,
    created_at           TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    last_modified        TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT unique_ingested UNIQUE (submission_file_path, archive_file_path)
);

CREATE TABLE sda.checksums (
    id                   SERIAL PRIMARY KEY,
    file_id              UUID REFERENCES sda.files(id),
    checksum             TEXT,
    type                 sda.checksum_algorithm,
    source               sda.checksum_source,
    CONSTRAINT unique_checksum UNIQUE (file_id, type, source)
);

CREATE TABLE sda.file_event_log (
    id                   SERIAL PRIMARY KEY,
    file_id              UUID REFERENCES sda.files(id),
    event                TEXT,
    user_id              TEXT,
    details              JSONB,
    message              JSONB,
    started_at           TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    finished_at          TIMESTAMP WITH TIME ZONE,
    success              BOOLEAN,
    error                TEXT
);

CREATE TABLE sda.file_dataset (
    id                   SERIAL PRIMARY KEY,
    file_id              UUID REFERENCES sda.files(id) NOT NULL,
    dataset_id           INT REFERENCES sda.datasets(id) NOT NULL,
    CONSTRAINT unique_file_dataset UNIQUE (file_id, dataset_id)
);
"""


@dataclass
class SdaFile:
    """One archived file as ingest leaves it in `sda.files` and `sda.checksums`."""

    stable_id: str
    submission_user: str
    submission_file_path: str
    archive_location: str
    archive_file_path: str
    archive_file_size: int | None
    header_hex: str
    unencrypted_sha256: str | None
    archived_sha256: str | None
    submission_location: str | None = None
    decrypted_file_size: int | None = None


def _dsn(name: str) -> str:
    return make_dsn(SERVER_DSN, dbname=name)


def drop_sda_database(name: str) -> None:
    """Drop database `name` if it exists, even with open connections."""
    with closing(psycopg2.connect(SERVER_DSN)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_sda_database(name: str, schema_version: int = 23) -> str:
    """(Re)create database `name` with the SDA tables at `schema_version`; return its DSN."""
    drop_sda_database(name)
    with closing(psycopg2.connect(SERVER_DSN)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = _dsn(name)
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute(SDA_DDL)
        cur.execute(
            "INSERT INTO sda.dbschema_version (version, description) VALUES (%s, %s)",
            (schema_version, "Created by bpsync_dagster_tests"),
        )
    return dsn


def sda_sync_grants(sync_role: str, base_role: str) -> str:
    """The SDA's grants to its roles `sync` and `base` (its `postgresql/initdb.d/04_grants.sql`), for
    roles of the given names."""
    return f"""
    GRANT USAGE ON SCHEMA sda TO {base_role};
    GRANT SELECT ON sda.dbschema_version TO {base_role};
    GRANT USAGE ON SCHEMA sda TO {sync_role};
    GRANT SELECT ON sda.files TO {sync_role};
    GRANT SELECT ON sda.file_dataset TO {sync_role};
    GRANT SELECT ON sda.file_event_log TO {sync_role};
    GRANT SELECT ON sda.checksums TO {sync_role};
    """


def sda_sync_login_role(login_role: str, password: str | None) -> str:
    """For a fresh cluster: the SDA's group roles `sync` and `base` and a login role holding both,
    as the SDA's integration test sets up its sync service."""
    login = f"LOGIN PASSWORD '{password}'" if password else "LOGIN"
    return f"CREATE ROLE sync; CREATE ROLE base; CREATE ROLE {login_role} {login}; GRANT sync, base TO {login_role};"


def insert_file(dsn: str, sda_file: SdaFile) -> str:
    """Insert the file row and its SHA256 UNENCRYPTED/ARCHIVED checksums; return the file's uuid."""
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO sda.files (
                stable_id, submission_user, submission_location, submission_file_path,
                archive_location, archive_file_path, archive_file_size, decrypted_file_size,
                header, encryption_method
            ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'CRYPT4GH')
            RETURNING id
            """,
            (
                sda_file.stable_id,
                sda_file.submission_user,
                sda_file.submission_location,
                sda_file.submission_file_path,
                sda_file.archive_location,
                sda_file.archive_file_path,
                sda_file.archive_file_size,
                sda_file.decrypted_file_size,
                sda_file.header_hex,
            ),
        )
        file_id = str(cur.fetchone()[0])
        for source, checksum in (
            ("UNENCRYPTED", sda_file.unencrypted_sha256),
            ("ARCHIVED", sda_file.archived_sha256),
        ):
            if checksum is not None:
                cur.execute(
                    "INSERT INTO sda.checksums (file_id, checksum, type, source) VALUES (%s, %s, 'SHA256', %s)",
                    (file_id, checksum, source),
                )
    return file_id


def map_dataset(dsn: str, dataset_stable_id: str, file_stable_ids: list[str]) -> None:
    """Create the dataset if needed and map the files (by accession ID) to it, as mapper would."""
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sda.datasets (stable_id) VALUES (%s) ON CONFLICT (stable_id) DO NOTHING",
            (dataset_stable_id,),
        )
        cur.execute("SELECT id FROM sda.datasets WHERE stable_id = %s", (dataset_stable_id,))
        dataset_id = cur.fetchone()[0]
        for stable_id in file_stable_ids:
            cur.execute("SELECT id FROM sda.files WHERE stable_id = %s", (stable_id,))
            row = cur.fetchone()
            if row is None:
                raise LookupError(f"no sda.files row with stable_id {stable_id!r}")
            cur.execute(
                "INSERT INTO sda.file_dataset (file_id, dataset_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (row[0], dataset_id),
            )
