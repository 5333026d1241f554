"""Tests of bpsync_dagster; `support/` holds the real services and data the tests build."""
