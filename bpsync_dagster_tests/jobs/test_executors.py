"""The executor of `sync_dataset` and its step storage, chosen by environment variables: in-process
with one copy batch by default; Celery with the broker read from the environment and step outputs
on S3 or a shared directory; a clear line naming the variable for anything else."""

import dagster as dg
import pytest
from dagster_aws.s3 import S3PickleIOManager

from bpsync_dagster.configuration import ConfigError
from bpsync_dagster.jobs.batching import ONE_BATCH, SPREAD_BATCHES
from bpsync_dagster.jobs.executors import chosen_deployment, deployment

BROKER = "amqp://user:broker-password@rabbitmq:5672/sda"


def test_by_default_the_steps_run_in_process_as_one_batch() -> None:
    chosen = deployment({})

    assert chosen.executor is dg.in_process_executor
    assert chosen.batch_limits == ONE_BATCH and chosen.resources == {}


def test_celery_reads_the_broker_from_the_environment_and_keeps_step_outputs_on_s3() -> None:
    environ = {
        "BPSYNC_EXECUTOR": "celery",
        "BPSYNC_CELERY_BROKER_URL": BROKER,
        "BPSYNC_STEP_STORAGE": "s3://steps/bpsync/runs/",
        "BPSYNC_STEP_STORAGE_ENDPOINT": "http://minio:9000",
    }

    chosen = deployment(environ)

    assert chosen.executor_name == "celery" and chosen.batch_limits == SPREAD_BATCHES
    assert chosen.executor.name == "bpsync_celery"
    assert "broker-password" not in repr(chosen.executor.config_schema) + repr(chosen.executor.__dict__)
    storage = chosen.resources["io_manager"]
    assert isinstance(storage, S3PickleIOManager)
    assert (storage.s3_bucket, storage.s3_prefix, storage.s3_resource.endpoint_url) == (
        "steps",
        "bpsync/runs",
        "http://minio:9000",
    )


def test_a_shared_directory_can_hold_the_step_outputs() -> None:
    environ = {"BPSYNC_EXECUTOR": "celery", "BPSYNC_CELERY_BROKER_URL": BROKER, "BPSYNC_STEP_STORAGE": "/srv/steps"}

    storage = deployment(environ).resources["io_manager"]

    assert isinstance(storage, dg.FilesystemIOManager) and storage.base_dir == "/srv/steps"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BPSYNC_EXECUTOR": "dask"}, "BPSYNC_EXECUTOR is 'dask': must be one of in_process, celery, k8s"),
        (
            {"BPSYNC_EXECUTOR": "celery", "BPSYNC_STEP_STORAGE": "/srv/steps"},
            "BPSYNC_EXECUTOR is celery but BPSYNC_CELERY_BROKER_URL is not set",
        ),
        ({"BPSYNC_EXECUTOR": "celery", "BPSYNC_CELERY_BROKER_URL": BROKER}, "BPSYNC_STEP_STORAGE is '': with"),
        (
            {"BPSYNC_EXECUTOR": "celery", "BPSYNC_CELERY_BROKER_URL": BROKER, "BPSYNC_STEP_STORAGE": "steps"},
            "BPSYNC_STEP_STORAGE is 'steps': with BPSYNC_EXECUTOR celery or k8s",
        ),
        (
            {"BPSYNC_EXECUTOR": "celery", "BPSYNC_CELERY_BROKER_URL": BROKER, "BPSYNC_STEP_STORAGE": "s3:///x"},
            "BPSYNC_STEP_STORAGE is 's3:///x': no bucket after s3://",
        ),
        (
            {"BPSYNC_EXECUTOR": "k8s", "BPSYNC_STEP_STORAGE": "s3://steps"},
            "BPSYNC_EXECUTOR is k8s but the dagster-k8s package is not installed: pip install dagster-k8s==0.29.27",
        ),
    ],
)
def test_a_wrong_setting_is_one_line_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        deployment(environ)

    assert str(raised.value).startswith(f"config: {message}")
    assert "\n" not in str(raised.value) and "broker-password" not in str(raised.value)


def test_a_wrong_setting_leaves_the_job_importable_and_fails_where_the_definitions_load() -> None:
    chosen = chosen_deployment({"BPSYNC_EXECUTOR": "dask"})

    assert chosen.executor is dg.in_process_executor
    with pytest.raises(ConfigError, match="^config: BPSYNC_EXECUTOR is 'dask'"):
        chosen.check()
    chosen_deployment({}).check()
