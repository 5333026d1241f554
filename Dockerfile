# bpsync-dagster: one image for the code server, the daemon, the webserver and `bpsync`.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home

RUN groupadd --system --gid 10001 bpsync \
 && useradd --system --uid 10001 --gid bpsync --home-dir /opt/dagster --shell /usr/sbin/nologin bpsync

WORKDIR /opt/bpsync
COPY constraints.txt pyproject.toml README.md ./
COPY schemas ./schemas
COPY bpsync_dagster ./bpsync_dagster
RUN pip install -c constraints.txt .
COPY dagster.yaml workspace.yaml ./
RUN mkdir -p "$DAGSTER_HOME" && cp dagster.yaml "$DAGSTER_HOME/dagster.yaml" && chown -R bpsync:bpsync /opt/dagster

USER bpsync
EXPOSE 3000 4000
# The code location as a gRPC server; the daemon and webserver use their own commands.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "bpsync_dagster.definitions", "--location-name", "bpsync"]
HEALTHCHECK --interval=60s --timeout=30s --start-period=30s CMD ["bpsync", "check"]
