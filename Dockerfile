# bpsync-dagster: one image for the code server, the daemon, the webserver and `bpsync`.
# Any Debian-based image with Python 3.11 as `python` and `pip` (scripts/build-image --base-image,
# or --local-base on a host that reaches no registry).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home

RUN groupadd --system --gid 10001 bpsync \
 && useradd --system --uid 10001 --gid bpsync --home-dir /opt/dagster --shell /usr/sbin/nologin bpsync

WORKDIR /opt/bpsync
# The dependencies first, in a layer of their own: a change of the code alone rebuilds in seconds.
COPY constraints.txt pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt
COPY README.md ./
COPY schemas ./schemas
COPY bpsync_dagster ./bpsync_dagster
RUN pip install --no-deps -c constraints.txt .
COPY dagster.yaml workspace.yaml ./
RUN mkdir -p "$DAGSTER_HOME" && cp dagster.yaml "$DAGSTER_HOME/dagster.yaml" && chown -R bpsync:bpsync /opt/dagster

USER bpsync
EXPOSE 3000 4000
# The code location as a gRPC server; the daemon and webserver use their own commands.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "bpsync_dagster.definitions", "--location-name", "bpsync"]
HEALTHCHECK --interval=60s --timeout=30s --start-period=30s CMD ["bpsync", "check"]
