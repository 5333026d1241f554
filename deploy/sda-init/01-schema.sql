-- SDA database tables that bpsync reads, at schema version 23.
-- Generated from SDA_DDL in bpsync_dagster_tests/support/sda_database.py;
-- bpsync_dagster_tests/deployment/test_deploy_files.py checks that it still matches.
-- Run once by the postgres image's entrypoint when the sda-db volume is empty.

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

INSERT INTO sda.dbschema_version (version, description)
VALUES (23, 'Tables bpsync reads, created by deploy/sda-init');
