"""The service as the SDA deploys it: logged in as a role with only the SDA's `sync` and `base` grants.

A sync of files named by their accession IDs needs nothing more; what needs `sda.datasets` names the
grant it lacks, at once and without retries."""

import os
from contextlib import closing

import psycopg2
import pytest

from bpsync_dagster.configuration import DatabaseSettings
from bpsync_dagster.sda_database import MissingGrantError, SdaDatabase
from bpsync_dagster_tests.support import sda_database
from bpsync_dagster_tests.support.environment import (
    SDA_DB,
    SDA_DB_DATASETS_USER,
    SDA_DB_PASSWORD,
    SDA_DB_USER,
    Node,
    create_role,
    create_sda_database,
    drop_database,
)

BASE_ONLY_USER = "bpsync_test_sda_base_only"


def database(user: str) -> SdaDatabase:
    return SdaDatabase(DatabaseSettings("127.0.0.1", 5432, user, SDA_DB_PASSWORD, SDA_DB, sslmode="disable"))


def test_the_sync_role_reads_files_and_checksums_but_not_datasets(sda_dsn: str) -> None:
    with closing(psycopg2.connect(sda_dsn.replace("user=postgres", f"user={SDA_DB_USER}"))) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sda.files")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sda.datasets")

    with database(SDA_DB_USER).connect() as connection:
        state = database(SDA_DB_USER).state(connection)
    assert state.version == 23 and not state.reads_datasets
    assert state.missing_sync_grants() == []


def test_without_datasets_files_of_a_dataset_are_refused_naming_the_grant(sda_dsn: str) -> None:
    with pytest.raises(MissingGrantError) as caught:
        database(SDA_DB_USER).file_records("SYNC-001-00001", [])

    assert str(caught.value) == (
        "dataset SYNC-001-00001: finding the files of a dataset without accession IDs needs SELECT on "
        f"sda.datasets, which the SDA database role {SDA_DB_USER} lacks "
        f"(GRANT SELECT ON sda.datasets TO {SDA_DB_USER})"
    )
    with pytest.raises(MissingGrantError, match=r"^listing the local datasets needs SELECT on sda\.datasets"):
        database(SDA_DB_USER).local_datasets("SYNC")
    with pytest.raises(MissingGrantError, match=r"^auditing the local datasets needs SELECT on sda\.datasets"):
        database(SDA_DB_USER).local_dataset_files("SYNC")


def test_a_role_without_the_sync_grants_is_refused_naming_them(sda_dsn: str) -> None:
    create_role(BASE_ONLY_USER, SDA_DB_PASSWORD)
    with closing(psycopg2.connect(sda_dsn)) as connection, connection, connection.cursor() as cursor:
        cursor.execute(f"GRANT USAGE ON SCHEMA sda TO {BASE_ONLY_USER}")
        cursor.execute(f"GRANT SELECT ON sda.dbschema_version, sda.files TO {BASE_ONLY_USER}")

    with pytest.raises(MissingGrantError) as caught:
        database(BASE_ONLY_USER).file_records("SYNC-001-00001", ["SYNC-123-00001"])

    assert str(caught.value) == (
        f"the SDA database role {BASE_ONLY_USER} lacks SELECT on sda.checksums, sda.file_dataset "
        "(the SDA grants these to its role sync)"
    )


def test_a_file_of_another_dataset_is_refused_by_file_dataset_alone(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id, other = node.dataset_id("mine"), node.dataset_id("theirs")
    (mine,) = node.add_dataset(dataset_id, [("mine.c4gh", b"mine")])
    (theirs,) = node.add_dataset(other, [("theirs.c4gh", b"theirs")])

    result = node.bpsync("sync", dataset_id, mine.accession_id, theirs.accession_id)

    assert result.returncode == 1
    assert (
        f"{mine.accession_id} and {theirs.accession_id} are mapped to different datasets in sda.file_dataset"
        in result.stderr
    )
    assert node.visible_sync_names() == [] and node.remote.attempts == 0


def test_a_sync_by_accession_ids_needs_only_the_sync_role(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("least-privilege")
    files = node.add_dataset(dataset_id, [("a.c4gh", b"a" * 3000), ("b.c4gh", b"b" * 5000)])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 0, result.stdout + result.stderr
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
    (run,) = node.instance().get_runs(filters=None, limit=1)
    logs = [event.user_message for event in node.instance().all_logs(run.run_id)]
    skipped = [message for message in logs if "skipped the check that every file belongs to this dataset" in message]
    assert len(skipped) == 1, "the skipped check is reported once per run"


def test_a_sync_without_accession_ids_fails_at_once_naming_the_grant(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("whole")
    node.add_dataset(dataset_id, [("whole.c4gh", b"whole")])

    refused = node.bpsync("sync", dataset_id)

    assert refused.returncode == 1
    assert f"GRANT SELECT ON sda.datasets TO {SDA_DB_USER}" in refused.stderr
    assert "will retry" not in refused.stdout + refused.stderr

    node.database_user = SDA_DB_DATASETS_USER
    synced = node.bpsync("sync", dataset_id)

    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert node.decrypt_synced(f"{node.prefix}/whole.c4gh") == b"whole"


def test_check_says_what_the_missing_datasets_grant_costs(make_node) -> None:
    node: Node = make_node("posix", "posix")
    node.extra_env = {"BROKER_QUEUE": f"{node.prefix}-absent"}

    result = node.bpsync("check")

    lines = result.stdout.splitlines()
    assert any(line.startswith(f"database {SDA_DB_USER}@") and ": ok (schema version 23" in line for line in lines)
    (datasets,) = [line for line in lines if "sda.datasets" in line]
    assert f"GRANT SELECT ON sda.datasets TO {SDA_DB_USER}" in datasets and "backfill and audit" in datasets


def test_the_fixture_grants_match_the_sda(sda_dsn: str) -> None:
    """The roles the tests log in as hold exactly the SDA's sync and base grants (plus datasets)."""
    with closing(psycopg2.connect(sda_dsn)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'sda' ORDER BY tablename")
        tables = [row[0] for row in cursor.fetchall()]
        readable: dict[str, list[str]] = {}
        for user in (SDA_DB_USER, SDA_DB_DATASETS_USER):
            readable[user] = []
            for table in tables:
                cursor.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (user, f"sda.{table}"))
                if cursor.fetchone()[0]:
                    readable[user].append(table)
    sync_tables = ["checksums", "dbschema_version", "file_dataset", "file_event_log", "files"]
    assert readable[SDA_DB_USER] == sync_tables
    assert readable[SDA_DB_DATASETS_USER] == sorted([*sync_tables, "datasets"])
    assert "datasets" not in sda_database.sda_sync_grants("sync", "base")


def test_backfill_names_the_grant_it_lacks(make_node) -> None:
    node: Node = make_node("posix", "posix")

    result = node.bpsync("backfill", "--dry-run")

    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"bpsync: listing the local datasets needs SELECT on sda.datasets, which the SDA database role "
        f"{SDA_DB_USER} lacks (GRANT SELECT ON sda.datasets TO {SDA_DB_USER})"
    )


def test_the_tables_are_found_in_the_configured_schema(make_node) -> None:
    node: Node = make_node("posix", "posix")
    name = f"bpsync_test_sda_schema_{os.getpid()}"
    node.sda_dsn = create_sda_database(name)
    dataset_id = node.dataset_id("schema")
    (item,) = node.add_dataset(dataset_id, [("schema.c4gh", b"in another schema")])
    with closing(psycopg2.connect(node.sda_dsn)) as connection, connection, connection.cursor() as cursor:
        cursor.execute("ALTER SCHEMA sda RENAME TO sda_node")
    node.extra_env = {"DB_DATABASE": name}
    try:
        refused = node.sync_mapped(dataset_id)
        node.extra_env["DATABASE_SCHEMA"] = "sda_node"
        synced = node.sync_mapped(dataset_id)
    finally:
        drop_database(name)

    assert refused.returncode == 1 and "has no table sda.dbschema_version; db.schema" in refused.stderr
    assert "will retry" not in refused.stdout
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert node.decrypt_synced(item.path) == item.plaintext
