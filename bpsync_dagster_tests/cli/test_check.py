"""`bpsync check` reports everything there is to fix in one run: every configuration problem, and a
line for each storage entry even when another entry cannot be reached."""

import yaml

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.ports import free_port


def test_check_reports_three_configuration_mistakes_in_one_run(make_node) -> None:
    node: Node = make_node()
    tree = node.config()
    tree["sync"].pop("centerPrefix")  # type: ignore[union-attr]
    tree["broker"]["port"] = "five"  # type: ignore[index]
    tree["log"] = {"level": "loud"}
    path = node.root / "three-mistakes.yaml"
    path.write_text(yaml.safe_dump(tree))
    node.extra_env = {"CONFIG_FILE": str(path)}

    result = node.bpsync("check")

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"bpsync: config: 3 problems in {path} and the environment:",
        "  sync.centerPrefix (env SYNC_CENTERPREFIX) is required",
        "  broker.port (env BROKER_PORT) must be an integer, not 'five'",
        "  log.level (env LOG_LEVEL) must be one of trace, debug, info, warn, warning, error, fatal, panic, not 'loud'",
    ]


def unreachable_s3(**options: object) -> dict[str, object]:
    """An S3 entry whose endpoint nothing listens on."""
    return {
        "endpoint": f"http://127.0.0.1:{free_port()}",
        "access_key": "unused",
        "secret_key": "unused",
        "disable_https": True,
        **options,
    }


def test_every_storage_entry_has_its_line_when_an_s3_endpoint_is_unreachable(make_node) -> None:
    node: Node = make_node("posix", "posix")
    tree = node.config()
    archive_s3, sync_s3 = unreachable_s3(), unreachable_s3(bucket_prefix="sync")
    tree["storage"] = {
        "archive": {"s3": [archive_s3], "posix": [{"path": str(node.archive_dir)}]},
        "sync": {"s3": [sync_s3], "posix": [{"path": str(node.sync_dir)}]},
    }
    path = node.root / "one-unreachable.yaml"
    path.write_text(yaml.safe_dump(tree))
    node.extra_env = {"CONFIG_FILE": str(path)}

    result = node.bpsync("check")

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"config: {path} and the environment: ok (sync.centerPrefix SYNC)"
    storage = [line for line in lines if line.startswith(("archive ", "sync "))]
    assert storage == [
        f"archive s3 {archive_s3['endpoint']}: list buckets: S3 endpoint unreachable (EndpointConnectionError)",
        f"archive posix {node.archive_dir}: ok",
        f"sync s3 {sync_s3['endpoint']}: listing of buckets at {sync_s3['endpoint']}: S3 endpoint unreachable "
        "(EndpointConnectionError)",
        f"sync posix {node.sync_dir}: ok",
    ]
    assert any(
        line.startswith("database ") and line.endswith(": ok (schema version 23, the SDA sync role's grants)")
        for line in lines
    ), lines
    assert any(line.startswith("remote API ") for line in lines), lines


def test_a_writer_disabled_sync_entry_has_its_line(make_node) -> None:
    node: Node = make_node("posix", "posix")
    tree = node.config()
    disabled = unreachable_s3(writer_disabled=True)
    tree["storage"]["sync"]["s3"] = [disabled]  # type: ignore[index]
    path = node.root / "disabled.yaml"
    path.write_text(yaml.safe_dump(tree))
    node.extra_env = {"CONFIG_FILE": str(path)}

    lines = node.bpsync("check").stdout.splitlines()

    assert f"sync s3 {disabled['endpoint']}: ok, not checked: writer_disabled" in lines
    assert f"sync posix {node.sync_dir}: ok" in lines
