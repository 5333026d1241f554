from bpsync_dagster.cli.main import entry_point

entry_point()
