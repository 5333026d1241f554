"""Where the steps of `sync_dataset` run, chosen at deployment by environment variables (never by run
config, so no secret reaches the run config or the UI). See docs/scaling.md.

- `BPSYNC_EXECUTOR`: `in_process` (default: one process, the copy in threads, one batch per dataset),
  `celery` (each copy batch a Celery task on any worker listening on the broker) or `k8s` (each step
  a Kubernetes Job, with `dagster-k8s` installed and its `K8sRunLauncher`).
- `BPSYNC_CELERY_BROKER_URL`: the broker of `celery`, e.g. the node's RabbitMQ
  (`amqp://user:password@host:5672/vhost`); Dagster reads it from the environment of the process
  that runs the run and of every worker.
- `BPSYNC_STEP_STORAGE`: where step outputs pass between machines, needed by `celery` and `k8s`:
  `s3://bucket/prefix` (credentials from the usual `AWS_*` variables, endpoint from
  `BPSYNC_STEP_STORAGE_ENDPOINT`) or an absolute directory every machine mounts.

Every process that loads the code location (code server, run, Celery workers, step pods) must see
the same values: they decide the job's executor and where its steps' outputs are read.
"""

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg
from dagster_aws.s3 import S3PickleIOManager, S3Resource

from bpsync_dagster.configuration import ConfigError
from bpsync_dagster.jobs.batching import ONE_BATCH, SPREAD_BATCHES, BatchLimits

EXECUTOR_VARIABLE = "BPSYNC_EXECUTOR"
BROKER_VARIABLE = "BPSYNC_CELERY_BROKER_URL"
STEP_STORAGE_VARIABLE = "BPSYNC_STEP_STORAGE"
STEP_STORAGE_ENDPOINT_VARIABLE = "BPSYNC_STEP_STORAGE_ENDPOINT"
EXECUTORS = ("in_process", "celery", "k8s")
# A task is acknowledged once done, so a worker that dies mid-batch hands its batch back to the
# broker for another worker; each worker takes one task at a time.
CELERY_SETTINGS: dict[str, object] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}


@dataclass(frozen=True)
class Deployment:
    """The executor of `sync_dataset`, the resources it needs (the step storage) and the default batching."""

    executor_name: str
    executor: dg.ExecutorDefinition
    batch_limits: BatchLimits
    resources: dict[str, object] = field(default_factory=dict)
    problem: ConfigError | None = None

    def check(self) -> None:
        """Raise the problem of the environment, if it had one."""
        if self.problem is not None:
            raise self.problem


def chosen_deployment(environ: Mapping[str, str] = os.environ) -> Deployment:
    """`deployment()`, or in-process holding the problem: importing the job never fails, and loading
    the definitions (`check()`) fails with the one line naming the variable."""
    try:
        return deployment(environ)
    except ConfigError as error:
        return Deployment("in_process", dg.in_process_executor, ONE_BATCH, problem=error)


def deployment(environ: Mapping[str, str] = os.environ) -> Deployment:
    """The deployment the environment asks for; a ConfigError naming the variable if it is wrong."""
    name = environ.get(EXECUTOR_VARIABLE, "").strip() or "in_process"
    if name not in EXECUTORS:
        raise ConfigError(f"{EXECUTOR_VARIABLE} is {name!r}: must be one of {', '.join(EXECUTORS)}")
    if name == "in_process":
        return Deployment(name, dg.in_process_executor, ONE_BATCH)
    resources = {"io_manager": step_storage(environ)}
    if name == "celery":
        if not environ.get(BROKER_VARIABLE):
            raise ConfigError(
                f"{EXECUTOR_VARIABLE} is celery but {BROKER_VARIABLE} is not set: set it to the broker URL"
            )
        return Deployment(name, celery_executor(), SPREAD_BATCHES, resources)
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as error:
        raise ConfigError(
            f"{EXECUTOR_VARIABLE} is k8s but the dagster-k8s package is not installed: pip install dagster-k8s==0.29.27"
        ) from error
    return Deployment(name, k8s_job_executor, SPREAD_BATCHES, resources)


def celery_executor() -> dg.ExecutorDefinition:
    """dagster-celery's executor on the broker of `BPSYNC_CELERY_BROKER_URL`, read from the environment."""
    from celery.exceptions import DuplicateTaskNameWarning
    from dagster_celery import celery_executor as executor

    # dagster-celery registers its one task again for every step it submits; Celery warns each time
    # and keeps the first registration, which is the same function: nothing for an operator to act on.
    warnings.filterwarnings(
        "ignore", message="Task name 'execute_plan' is already registered", category=DuplicateTaskNameWarning
    )

    return executor.configured(
        {"broker": {"env": BROKER_VARIABLE}, "config_source": CELERY_SETTINGS}, name="bpsync_celery"
    )


def step_storage(environ: Mapping[str, str]) -> dg.ConfigurableIOManager:
    """The IO manager of `BPSYNC_STEP_STORAGE`: pickles on S3 or in a shared directory."""
    location = environ.get(STEP_STORAGE_VARIABLE, "").strip()
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"{STEP_STORAGE_VARIABLE} is {location!r}: no bucket after s3://")
        endpoint = environ.get(STEP_STORAGE_ENDPOINT_VARIABLE) or None
        return S3PickleIOManager(
            s3_resource=S3Resource(endpoint_url=endpoint), s3_bucket=bucket, s3_prefix=prefix.strip("/") or "bpsync"
        )
    if location.startswith("/"):
        return dg.FilesystemIOManager(base_dir=location)
    raise ConfigError(
        f"{STEP_STORAGE_VARIABLE} is {location!r}: with {EXECUTOR_VARIABLE} celery or k8s, steps on other machines "
        "need it: s3://bucket/prefix or an absolute directory that every machine mounts"
    )
