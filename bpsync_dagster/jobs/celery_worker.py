"""The Celery app of bpsync's workers, with the executor's settings and the broker of
`BPSYNC_CELERY_BROKER_URL` taken from the environment (never written to a file):

    celery -A bpsync_dagster.jobs.celery_worker worker --concurrency 1 --prefetch-multiplier 1 -Q dagster

A worker needs the environment of the code server (service configuration, `DAGSTER_HOME` and the
`DAGSTER_POSTGRES_*` variables, `BPSYNC_*` of `jobs/executors.py`) and this package installed.
"""

import os

from celery.signals import celeryd_init
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from bpsync_dagster.jobs.executors import BROKER_VARIABLE, CELERY_SETTINGS

app = make_app(CeleryExecutor.for_cli(broker=os.environ.get(BROKER_VARIABLE), config_source=CELERY_SETTINGS).app_args())
execute_plan = create_task(app)


@celeryd_init.connect
def refuse_without_broker(**_: object) -> None:
    """A worker does not start on dagster-celery's default broker: the variable must name one.
    (Celery logs and ignores a handler's exceptions, but not SystemExit.)"""
    if not os.environ.get(BROKER_VARIABLE):
        raise SystemExit(f"bpsync worker: {BROKER_VARIABLE} is not set: set it to the URL of the broker the runs use")
