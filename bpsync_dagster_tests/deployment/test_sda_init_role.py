"""deploy/sda-init run as the postgres image runs it on first start, on a cluster of its own: the
role the compose stack's bpsync logs in as holds the SDA's sync grants and SELECT on sda.datasets
(for the audit), and can write nothing."""

import os
import re
import subprocess
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
import yaml

from bpsync_dagster.configuration.settings import DatabaseSettings
from bpsync_dagster.sda_database import SdaDatabase
from bpsync_dagster_tests.deployment.test_deploy_files import (
    CODE_SERVICE,
    COMPOSE_FILE,
    DEPLOY,
    ENV_EXAMPLE,
    read_env_file,
    service_env,
)
from bpsync_dagster_tests.support import sda_database
from bpsync_dagster_tests.support.private_postgres import PrivatePostgres

SDA_INIT = DEPLOY / "sda-init"


def statements(sql: str) -> list[str]:
    return [" ".join(statement.split()) for statement in sql.split(";") if statement.strip()]


def test_the_role_script_grants_the_sda_sync_and_base_grants_and_the_datasets_table() -> None:
    script = (SDA_INIT / "02-bpsync-role.sh").read_text()
    sql = script.split("<<'SQL'\n", 1)[1].split("\nSQL\n", 1)[0]
    granted = [statement for statement in statements(sql) if statement.startswith("GRANT")]
    assert granted == [
        *statements(sda_database.sda_sync_grants("sync", "base")),
        'GRANT sync, base TO :"login"',
        'GRANT SELECT ON sda.datasets TO :"login"',
    ]
    assert os.access(SDA_INIT / "02-bpsync-role.sh", os.X_OK), "the entrypoint runs executable scripts"


def test_sda_init_makes_the_role_bpsync_logs_in_as(tmp_path: Path) -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    env_example = read_env_file(ENV_EXAMPLE)
    sda_db = service_env(services["sda-db"], env_example)
    login = service_env(services[CODE_SERVICE], env_example)
    assert (login["DB_USER"], login["DB_PASSWORD"]) == (sda_db["SDA_DB_SYNC_USER"], sda_db["SDA_DB_SYNC_PASSWORD"])
    assert login["DB_USER"] != sda_db["POSTGRES_USER"], "bpsync does not log in as the database's owner"
    # The superuser connects without a password, every other role with its own (as the image sets up).
    hba = ["host all postgres 127.0.0.1/32 trust", "host all all 127.0.0.1/32 scram-sha-256"]
    with PrivatePostgres(tmp_path / "sda-db", hba_lines=hba) as server:
        server.execute(f"CREATE DATABASE {sda_db['POSTGRES_DB']}")
        server.execute((SDA_INIT / "01-schema.sql").read_text(), database=sda_db["POSTGRES_DB"])
        result = subprocess.run(
            [str(SDA_INIT / "02-bpsync-role.sh")],
            env={
                "PATH": os.environ["PATH"],
                **sda_db,
                "POSTGRES_USER": "postgres",
                "PGHOST": "127.0.0.1",
                "PGPORT": str(server.port),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        database = SdaDatabase(
            DatabaseSettings(
                host="127.0.0.1",
                port=server.port,
                user=login["DB_USER"],
                password=login["DB_PASSWORD"],
                database=sda_db["POSTGRES_DB"],
                sslmode="disable",
                ca_cert=None,
                client_cert=None,
                client_key=None,
            )
        )
        with database.connect() as connection:
            state = database.state(connection)
        assert state.version == 23
        assert state.missing_sync_grants() == [] and state.reads_datasets
        dsn = f"host=127.0.0.1 port={server.port} dbname={sda_db['POSTGRES_DB']} user={login['DB_USER']}"
        with closing(psycopg2.connect(dsn, password=login["DB_PASSWORD"])) as connection, connection.cursor() as cursor:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("UPDATE sda.files SET header = ''")
        with pytest.raises(psycopg2.OperationalError, match=re.escape("password authentication failed")):
            psycopg2.connect(dsn, password="not-the-password").close()
