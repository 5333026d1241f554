"""The Celery app of bpsync's workers, with the executor's settings and the broker of
`BPSYNC_CELERY_BROKER_URL` taken from the environment (never written to a file):

    celery -A bpsync_dagster.jobs.celery_worker worker --concurrency 1 --prefetch-multiplier 1 -Q dagster

A worker needs the environment of the code server (service configuration, `DAGSTER_HOME` and the
`DAGSTER_POSTGRES_*` variables, `BPSYNC_*` of `jobs/executors.py`) and this package installed.
"""

import os

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from bpsync_dagster.jobs.executors import BROKER_VARIABLE, CELERY_SETTINGS

broker = os.environ.get(BROKER_VARIABLE)
if not broker:
    raise SystemExit(f"bpsync worker: {BROKER_VARIABLE} is not set: set it to the URL of the broker")
app = make_app(CeleryExecutor.for_cli(broker=broker, config_source=CELERY_SETTINGS).app_args())
execute_plan = create_task(app)
