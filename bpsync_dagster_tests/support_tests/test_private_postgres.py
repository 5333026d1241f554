"""PrivatePostgres: a private cluster that starts quickly, keeps its data over restarts and crashes,
and takes extra settings and pg_hba rules."""

import time
from pathlib import Path

import psycopg2
import pytest

from bpsync_dagster_tests.support.private_postgres import PrivatePostgres


def test_data_survives_restart_and_kill(tmp_path: Path) -> None:
    began = time.monotonic()
    with PrivatePostgres(tmp_path / "pg") as database:
        assert time.monotonic() - began < 15
        assert database.port != 5432
        database.execute("CREATE DATABASE kept")
        database.execute("CREATE TABLE numbers (value int)", database="kept")
        database.execute("INSERT INTO numbers VALUES (1)", database="kept")
        database.restart()
        database.execute("INSERT INTO numbers VALUES (2)", database="kept")
        database.kill()
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(database.dsn("kept"), connect_timeout=2)
        database.start()
        assert database.execute("SELECT value FROM numbers ORDER BY value", database="kept") == [(1,), (2,)]
        data_directory = database.data_directory
    assert not data_directory.exists()
    assert not (tmp_path / "pg").exists()


def test_settings_and_hba_lines_apply(tmp_path: Path) -> None:
    with PrivatePostgres(
        tmp_path / "pg",
        settings={"application_name": "'from-settings'"},
        hba_lines=["host all postgres 127.0.0.1/32 trust", "host all all 127.0.0.1/32 reject"],
    ) as database:
        assert database.execute("SHOW application_name") == [("from-settings",)]
        database.execute("CREATE ROLE someone LOGIN")
        with pytest.raises(psycopg2.OperationalError, match="rejects connection"):
            psycopg2.connect(f"host=127.0.0.1 port={database.port} user=someone dbname=postgres")
