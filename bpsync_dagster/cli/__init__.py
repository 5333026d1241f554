"""The `bpsync` command."""
