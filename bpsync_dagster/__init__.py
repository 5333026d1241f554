"""bpsync-dagster: the Bigpicture dataset sync service of the Sensitive Data Archive, as a Dagster project."""
