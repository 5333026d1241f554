import sys

from bpsync_dagster.cli.main import main

sys.exit(main())
