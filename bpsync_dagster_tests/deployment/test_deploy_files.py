"""The compose stack in deploy/ without Docker: its files agree with each other, with the Dockerfile
and with the code, and the image's commands run here with the same arguments."""

import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import ListRepositoriesResponse
from dagster_postgres import PostgresRunStorage
from dagster_shared.serdes import deserialize_value

from bpsync_dagster import definitions
from bpsync_dagster.configuration import loader
from bpsync_dagster.configuration.config_file import CONFIG_FILE_VARIABLES
from bpsync_dagster.configuration.loader import env_name, load_settings
from bpsync_dagster.runs import launch
from bpsync_dagster.sda_database import SdaDatabase
from bpsync_dagster.sda_database.client import MINIMUM_SCHEMA_VERSION
from bpsync_dagster_tests.support import sda_database
from bpsync_dagster_tests.support.container_image import build_module
from bpsync_dagster_tests.support.environment import PROJECT_ROOT, Node

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
BIN = Path(sys.executable).parent
CODE_SERVICE = "bpsync-code"
CONFIG_SERVICE = "bpsync-config"
DAGSTER_SERVICES = (CODE_SERVICE, "dagster-webserver", "dagster-daemon")
IMAGE_SERVICES = (CONFIG_SERVICE, *DAGSTER_SERVICES)

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR; $$ is a literal $.
_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


# --- helpers -----------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.partition("=")
        assert separator and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"{path.name}:{number}: {line!r}"
        assert name not in values, f"{path.name}: {name} is set twice"
        values[name] = value
    return values


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation (enough of it for this file)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        value = env.get(name)
        unset = value is None or (value == "" and operator is not None and operator.startswith(":"))
        if operator in (":?", "?") and unset:
            raise KeyError(f"{name}: {argument}")
        if operator in (":-", "-") and unset:
            return argument
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def strings(tree: object) -> Iterator[str]:
    """Every string value (and mapping key) of a loaded YAML tree: what compose interpolates."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from strings(item)
    elif isinstance(tree, str):
        yield tree


def variables_used(tree: object) -> set[str]:
    return {
        match.group(1) or match.group(4)
        for text in strings(tree)
        for match in _INTERPOLATION.finditer(text)
        if match.group(0) != "$$"
    }


def service_env(service: Mapping[str, object], env: Mapping[str, str]) -> dict[str, str]:
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), "environment is written as a mapping"
    return {name: interpolate(str(value), env) for name, value in environment.items()}


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_exec_form(keyword: str) -> list[str]:
    (rest,) = [rest for name, rest in dockerfile_instructions() if name == keyword]
    if keyword == "HEALTHCHECK":
        rest = rest.split(" CMD ", 1)[1]
    return json.loads(rest)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def volume_mounts(service: Mapping[str, object]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of every short-syntax volume of a service."""
    mounts = []
    for item in service.get("volumes") or []:
        assert isinstance(item, str), "volumes use the short syntax"
        source, target, *mode = item.split(":")
        mounts.append((source, target, mode[0] if mode else "rw"))
    return mounts


def host_mounts(service: Mapping[str, object]) -> dict[str, Path]:
    """Container path -> host path of every bind mount."""
    return {target: (DEPLOY / source).resolve() for source, target, _ in volume_mounts(service) if source[0] in "./"}


def option(command: list[str], *names: str) -> str:
    for index, argument in enumerate(command):
        if argument in names:
            return command[index + 1]
    raise AssertionError(f"{command} has none of {names}")


def load_render_module():
    spec = importlib.util.spec_from_file_location("render_config", DEPLOY / "render_config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture
def rendered_config(tmp_path: Path, services: dict, env_example: dict[str, str]) -> Path:
    """deploy/config.yaml as bpsync-config writes it, from the .env.example values."""
    render = load_render_module()
    output = tmp_path / "config.yaml"
    output.write_text(
        render.render((DEPLOY / "config.yaml").read_text(), service_env(services[CONFIG_SERVICE], env_example))
    )
    return output


# --- the compose file --------------------------------------------------------------------------


def test_every_variable_of_the_compose_file_is_in_env_example(compose: dict, env_example: dict[str, str]) -> None:
    used = variables_used(compose)
    assert used - env_example.keys() == set(), "used in docker-compose.yml but not in .env.example"
    assert env_example.keys() - used == set(), "in .env.example but not used by docker-compose.yml"
    assert all(env_example.values()), "every .env.example value is filled in"
    # The whole file interpolates with those values, and a missing secret stops compose.
    for text in strings(compose):
        interpolate(text, env_example)
    required = {name for text in strings(compose) for name in re.findall(r"\$\{([A-Z_0-9]+):\?", text)}
    assert required, "secrets are required with ${VAR:?}"
    for name in required:
        with pytest.raises(KeyError, match=name):
            for text in strings(compose):
                interpolate(text, {key: value for key, value in env_example.items() if key != name})


def test_env_example_holds_placeholders_only(env_example: dict[str, str]) -> None:
    for name, value in env_example.items():
        assert not re.search(r"[\"'\\$\s]", value), f"{name}: quotes, backslashes, $ and spaces break interpolation"
        if re.search(r"PASSWORD|PASSPHRASE|SECRET", name):
            assert value.startswith("change-me"), f"{name} must be an obvious placeholder"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_the_image_is_built_once_from_the_project_dockerfile(services: dict) -> None:
    builders = [name for name, service in services.items() if "build" in service]
    assert builders == [CONFIG_SERVICE], "one service builds the image; the others only run it"
    build = services[CONFIG_SERVICE]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == PROJECT_ROOT
    assert (context / build["dockerfile"]).is_file()
    assert {services[name]["image"] for name in IMAGE_SERVICES} == {"bpsync-dagster:local"}
    assert build_module().DEFAULT_TAG == "bpsync-dagster:local", "scripts/build-image tags the compose image"
    for name in DAGSTER_SERVICES:
        assert services[name]["pull_policy"] == "never", f"{name} runs the image built here, never a pulled one"
    # Every service that runs the image starts after the one that builds it.
    assert services[CODE_SERVICE]["depends_on"][CONFIG_SERVICE]["condition"] == "service_completed_successfully"
    for name in ("dagster-webserver", "dagster-daemon"):
        assert CODE_SERVICE in services[name]["depends_on"]


def test_the_build_script_names_the_image_after_what_the_dockerfile_copies() -> None:
    copied = {
        source.rstrip("/")
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY"
        for source in [argument for argument in shlex.split(rest) if not argument.startswith("--")][:-1]
    }
    assert copied | {"Dockerfile"} == set(build_module().CONTEXT)
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert not copied.intersection(ignored), "the build context holds every file the image is named after"


def test_every_host_path_env_file_volume_and_config_exists(compose: dict, services: dict) -> None:
    declared_volumes = set(compose.get("volumes") or {})
    declared_configs = set(compose.get("configs") or {})
    for name, service in services.items():
        for source, target, mode in volume_mounts(service):
            assert target.startswith("/"), (name, target)
            assert mode in ("ro", "rw"), (name, source)
            if source[0] in "./":
                assert (DEPLOY / source).exists(), f"{name}: host path {source} does not exist"
                assert (DEPLOY / source).resolve().is_relative_to(DEPLOY), f"{name}: {source} is outside deploy/"
            else:
                assert source in declared_volumes, f"{name}: volume {source} is not declared"
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            assert (DEPLOY / path).is_file() or path == ".env", f"{name}: env_file {path}"
        for config in service.get("configs") or []:
            assert config["source"] in declared_configs, (name, config)
    for name, config in (compose.get("configs") or {}).items():
        assert "content" in config or (DEPLOY / config["file"]).is_file(), name


def test_port_mappings_are_local_unique_and_match_what_listens(services: dict, env_example: dict[str, str]) -> None:
    listening = {
        "dagster-webserver": int(option(services["dagster-webserver"]["command"], "-p", "--port")),
        "rabbitmq": 15672,  # the management plugin of the -management image
        "minio": int(option(services["minio"]["command"], "--console-address").lstrip(":")),
    }
    host_ports = []
    for name, service in services.items():
        for mapping in service.get("ports") or []:
            host_ip, host_port, container_port = interpolate(mapping, env_example).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {mapping} beyond this machine"
            assert int(container_port) == listening[name], (name, mapping)
            host_ports.append(int(host_port))
    assert sorted(host_ports) == sorted(set(host_ports)), "two services publish the same host port"
    assert set(listening) == {name for name, service in services.items() if service.get("ports")}
    code_port = option(services[CODE_SERVICE]["command"], "-p", "--port")
    assert services[CODE_SERVICE]["expose"] == [code_port]


def test_dependencies_name_services_and_can_be_met(services: dict) -> None:
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            target = services[dependency]
            if spec["condition"] == "service_healthy":
                assert target.get("healthcheck", {}).get("test"), f"{dependency} has no healthcheck"
            elif spec["condition"] == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} is a one-shot service"
            else:
                assert spec["condition"] == "service_started", (name, dependency)
    code = services[CODE_SERVICE]["depends_on"]
    for dependency in ("dagster-db", "sda-db", "rabbitmq"):
        assert code[dependency]["condition"] == "service_healthy"
    assert code[CONFIG_SERVICE]["condition"] == "service_completed_successfully"
    assert services["dagster-daemon"]["depends_on"][CODE_SERVICE]["condition"] == "service_healthy"


def test_the_code_server_runs_the_image_command_and_checks_with_bpsync(services: dict) -> None:
    code = services[CODE_SERVICE]
    assert code["command"] == dockerfile_exec_form("CMD")
    assert code["healthcheck"]["test"] == ["CMD", *dockerfile_exec_form("HEALTHCHECK")] == ["CMD", "bpsync", "check"]
    for name in ("dagster-webserver", "dagster-daemon"):
        # The image's HEALTHCHECK (bpsync check) needs the service configuration, which only the
        # code server has: the webserver and the daemon must bring their own.
        assert "bpsync" not in services[name]["healthcheck"]["test"], name


# --- environment the service reads -------------------------------------------------------------


def test_every_service_variable_set_by_compose_is_a_key_the_service_reads(
    services: dict, env_example: dict[str, str], rendered_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consulted: set[str] = set()
    original = loader._Source.raw

    def recording(self, keys: tuple[str, ...]) -> object | None:
        if self._environ is not None:
            consulted.update(env_name(key) for key in keys)
        return original(self, keys)

    monkeypatch.setattr(loader._Source, "raw", recording)
    environment = service_env(services[CODE_SERVICE], env_example)
    load_settings({**environment, "CONFIG_FILE": str(rendered_config)})

    service_variables = {
        name for name in environment if not name.startswith("DAGSTER_") and name not in CONFIG_FILE_VARIABLES
    }
    assert service_variables - consulted == set(), "set by compose but read by no configuration key"
    assert {"SYNC_REMOTE_PASSWORD", "C4GH_PASSPHRASE", "BROKER_PASSWORD", "DB_PASSWORD"} <= service_variables
    for name in ("dagster-webserver", "dagster-daemon"):
        assert not set(service_env(services[name], env_example)) - {
            f"DAGSTER_POSTGRES_{part}" for part in ("HOST", "PORT", "USER", "PASSWORD", "DB")
        }, f"{name} gets service secrets it does not need"


def test_instance_variables_are_the_ones_dagster_yaml_reads(services: dict, env_example: dict[str, str]) -> None:
    instance_text = (DEPLOY / "dagster.yaml").read_text()
    read = set(re.findall(r"env:\s*([A-Z_]+)", instance_text))
    for name in DAGSTER_SERVICES:
        environment = service_env(services[name], env_example)
        assert read <= environment.keys(), name
        assert environment["DAGSTER_POSTGRES_HOST"] == "dagster-db"
    db = service_env(services["dagster-db"], env_example)
    code = service_env(services[CODE_SERVICE], env_example)
    assert (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"]) == (
        code["DAGSTER_POSTGRES_USER"],
        code["DAGSTER_POSTGRES_PASSWORD"],
        code["DAGSTER_POSTGRES_DB"],
    )


# --- deploy/config.yaml --------------------------------------------------------------------------


def test_config_yaml_loads_with_the_compose_environment(
    services: dict, env_example: dict[str, str], rendered_config: Path
) -> None:
    code = services[CODE_SERVICE]
    environment = service_env(code, env_example)
    settings = load_settings({**environment, "CONFIG_FILE": str(rendered_config)})

    assert settings.warnings == ()
    assert settings.center_prefix == env_example["SYNC_CENTERPREFIX"]
    assert settings.remote.password == env_example["SYNC_REMOTE_PASSWORD"]
    # Every host it names is a service of the stack, on the port that service listens on.
    assert settings.broker.host == "rabbitmq" and settings.broker.port == 5672
    assert (settings.broker.vhost, settings.broker.exchange, settings.broker.queue) == ("sda", "sda", "mapping_stream")
    assert (settings.broker.user, settings.broker.password) == (
        env_example["BROKER_USER"],
        env_example["BROKER_PASSWORD"],
    )
    sda_db = service_env(services["sda-db"], env_example)
    assert settings.database.host == "sda-db" and settings.database.port == 5432
    assert settings.database.database == sda_db["POSTGRES_DB"]
    assert (settings.database.user, settings.database.password) == (
        sda_db["SDA_DB_SYNC_USER"],
        sda_db["SDA_DB_SYNC_PASSWORD"],
    )
    assert settings.database.sslmode == "disable"
    minio = service_env(services["minio"], env_example)
    for entry in (*settings.archive.s3, *settings.sync.s3):
        assert entry.endpoint == "http://minio:9000" and entry.disable_https
        assert (entry.access_key, entry.secret_key) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    assert settings.sync.s3 and settings.archive.s3
    # The keys and the rendered file are where the code server's mounts put them.
    mounts = {target: source for source, target, _ in volume_mounts(code)}
    assert mounts["/keys"] == "./keys"
    for key_path in (settings.crypt4gh.private_key_path, settings.crypt4gh.receiver_public_key_path):
        assert key_path.parent == Path("/keys")
    config_file = Path(environment["CONFIG_FILE"])
    assert mounts[str(config_file.parent)] == CONFIG_SERVICE
    config_command = services[CONFIG_SERVICE]["command"]
    assert config_command[3] == str(config_file)
    config_mounts = {target: source for source, target, _ in volume_mounts(services[CONFIG_SERVICE])}
    assert config_mounts[config_command[2]] == "./config.yaml"
    assert config_mounts[config_command[1]] == "./render_config.py"
    assert config_mounts[str(config_file.parent)] == CONFIG_SERVICE
    uid = option(config_command, "--owner").split(":")[0]
    assert uid == "10001" and "--uid 10001" in (PROJECT_ROOT / "Dockerfile").read_text()


def test_config_yaml_holds_no_secret_and_placeholders_only_for_storage_credentials(
    services: dict, env_example: dict[str, str]
) -> None:
    render = load_render_module()
    tree = yaml.safe_load((DEPLOY / "config.yaml").read_text())
    storage = tree.pop("storage")
    assert render.placeholders(tree) == set(), "outside storage, secrets are environment variables"
    for side in storage.values():
        for entries in side.values():
            for entry in entries:
                assert render.PLACEHOLDER.fullmatch(entry["access_key"])
                assert render.PLACEHOLDER.fullmatch(entry["secret_key"])
    assert render.placeholders(storage) <= set(service_env(services[CONFIG_SERVICE], env_example))
    text = (DEPLOY / "config.yaml").read_text()
    for value in env_example.values():
        if len(value) > 6:
            assert value not in text


def test_render_config_refuses_a_missing_variable_and_writes_a_private_file(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "storage:\n  sync:\n    s3:\n      - secret_key: ${S3_SECRET_KEY}\n        note: '${NOT_A_PLACEHOLDER'\n"
    )
    output = tmp_path / "out" / "config.yaml"
    command = [sys.executable, str(DEPLOY / "render_config.py"), str(template), str(output)]
    env = {"PATH": os.environ["PATH"]}

    missing = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "S3_SECRET_KEY is not set" in missing.stderr
    assert not output.exists()

    secret = "a: secret # with 'yaml' \"characters\" ${X}"
    written = subprocess.run(command, env={**env, "S3_SECRET_KEY": secret}, capture_output=True, text=True, timeout=30)
    assert written.returncode == 0, written.stderr
    assert yaml.safe_load(output.read_text())["storage"]["sync"]["s3"][0] == {
        "secret_key": secret,
        "note": "${NOT_A_PLACEHOLDER",
    }
    assert output.stat().st_mode & 0o777 == 0o400


# --- workspace.yaml and dagster.yaml -------------------------------------------------------------


def test_workspace_points_at_the_code_server(services: dict) -> None:
    (entry,) = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    server = entry["grpc_server"]
    command = services[server["host"]]["command"]
    assert server["host"] == CODE_SERVICE
    assert server["port"] == int(option(command, "-p", "--port"))
    assert server["location_name"] == option(command, "--location-name") == launch.LOCATION_NAME
    assert option(command, "-m", "--module-name") == definitions.__name__
    for name in ("dagster-webserver", "dagster-daemon"):
        workspace = option(services[name]["command"], "-w", "--workspace")
        assert host_mounts(services[name])[workspace] == DEPLOY / "workspace.yaml", name


def test_dagster_yaml_is_mounted_as_the_image_instance(services: dict) -> None:
    dagster_home = dockerfile_env()["DAGSTER_HOME"]
    for name in DAGSTER_SERVICES:
        assert host_mounts(services[name])[f"{dagster_home}/dagster.yaml"] == DEPLOY / "dagster.yaml", name
        assert ("dagster-home", dagster_home) in [
            (source, target) for source, target, _ in volume_mounts(services[name])
        ], f"{name} shares the compute logs under DAGSTER_HOME"


def test_dagster_yaml_keeps_the_project_settings_and_launches_runs_in_the_code_server() -> None:
    deploy = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    project = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    for section in (
        "storage",
        "run_coordinator",
        "run_monitoring",
        "run_retries",
        "sensors",
        "python_logs",
        "telemetry",
    ):
        assert deploy[section] == project[section], section
    assert deploy["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert deploy["run_launcher"] == {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}


def test_dagster_yaml_opens_an_instance(dagster_instance_env: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    _, env = dagster_instance_env
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        try:
            assert isinstance(instance.run_launcher, DefaultRunLauncher)
            assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
            assert instance.run_monitoring_enabled
            assert instance.run_retries_enabled and not instance.run_retries_retry_on_asset_or_op_failure
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 10
            probe = instance.add_run(DagsterRun(job_name="deploy_probe", run_id=make_new_run_id()))
            try:
                stored = instance.get_run_by_id(probe.run_id)
                assert stored is not None and stored.job_name == "deploy_probe"
            finally:
                instance.delete_run(probe.run_id)
        finally:
            instance.dispose()


# --- RabbitMQ --------------------------------------------------------------------------------------


def test_rabbitmq_definitions_declare_exactly_the_sda_topology() -> None:
    definitions_json = json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())
    stream = {"x-queue-type": "stream", "x-max-age": "1M"}
    queue = {"vhost": "sda", "durable": True, "auto_delete": False, "arguments": stream}
    binding = {"source": "sda", "vhost": "sda", "destination_type": "queue", "arguments": {}}
    assert definitions_json == {
        "vhosts": [{"name": "sda"}],
        "exchanges": [
            {
                "name": "sda",
                "vhost": "sda",
                "type": "topic",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
        ],
        "queues": [{"name": "mapping_stream", **queue}, {"name": "error_stream", **queue}],
        "bindings": [
            {**binding, "destination": "mapping_stream", "routing_key": "mappings"},
            {**binding, "destination": "error_stream", "routing_key": "error"},
        ],
    }


def test_rabbitmq_loads_the_definitions_and_the_user_from_env(
    compose: dict, services: dict, env_example: dict[str, str]
) -> None:
    conf = {
        key.strip(): value.strip()
        for key, _, value in (
            line.partition("=")
            for line in (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
    }
    definitions_dir = conf["load_definitions"]
    rabbitmq = services["rabbitmq"]
    mounts = host_mounts(rabbitmq)
    assert mounts[f"{definitions_dir}/20-topology.json"] == DEPLOY / "rabbitmq" / "definitions.json"
    conf_targets = [target for target, source in mounts.items() if source == DEPLOY / "rabbitmq" / "rabbitmq.conf"]
    assert conf_targets and re.fullmatch(r"/etc/rabbitmq/conf\.d/[0-9]+-[a-z]+\.conf", conf_targets[0])
    (config,) = rabbitmq["configs"]
    assert Path(config["target"]).parent == Path(definitions_dir) and config["target"].endswith(".json")
    users = json.loads(interpolate(compose["configs"][config["source"]]["content"], env_example))
    broker_user, broker_password = env_example["BROKER_USER"], env_example["BROKER_PASSWORD"]
    assert users["users"] == [{"name": broker_user, "password": broker_password, "tags": "administrator"}]
    assert users["permissions"] == [
        {"user": broker_user, "vhost": "sda", "configure": ".*", "write": ".*", "read": ".*"}
    ]
    assert users["vhosts"] == [{"name": "sda"}]


# --- the SDA database ------------------------------------------------------------------------------


def test_sda_init_matches_sda_ddl_and_sets_a_supported_schema_version(services: dict) -> None:
    sql = (DEPLOY / "sda-init" / "01-schema.sql").read_text()
    assert sda_database.SDA_DDL in sql, "regenerate deploy/sda-init/01-schema.sql from SDA_DDL"
    body = sql.replace(sda_database.SDA_DDL, "")
    statements = [line for line in body.splitlines() if line.strip() and not line.startswith("--")]
    assert statements == [
        "INSERT INTO sda.dbschema_version (version, description)",
        "VALUES (23, 'Tables bpsync reads, created by deploy/sda-init');",
    ]
    assert 23 >= MINIMUM_SCHEMA_VERSION
    assert host_mounts(services["sda-db"])["/docker-entrypoint-initdb.d"] == DEPLOY / "sda-init"


@pytest.fixture
def scratch_database() -> Iterator[str]:
    name = f"bpsync_test_deploy_{os.getpid()}"
    sda_database.drop_sda_database(name)
    with closing(psycopg2.connect(sda_database.SERVER_DSN)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
    yield name
    sda_database.drop_sda_database(name)


def test_sda_init_creates_a_database_the_service_accepts(scratch_database: str) -> None:
    from bpsync_dagster.configuration import DatabaseSettings

    with closing(
        psycopg2.connect(sda_database.SERVER_DSN.replace("dbname=postgres", f"dbname={scratch_database}"))
    ) as c:
        with c, c.cursor() as cursor:
            cursor.execute((DEPLOY / "sda-init" / "01-schema.sql").read_text())
    database = SdaDatabase(
        DatabaseSettings(
            host="127.0.0.1",
            port=5432,
            user="postgres",
            password="",
            database=scratch_database,
            sslmode="disable",
            ca_cert=None,
            client_cert=None,
            client_key=None,
        )
    )
    with database.connect() as connection:
        assert database.state(connection).version == 23


# --- the Dockerfile and the image's commands ------------------------------------------------------


def test_dockerfile_copy_sources_exist() -> None:
    copies = [rest for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    assert copies
    for rest in copies:
        arguments = [argument for argument in shlex.split(rest) if not argument.startswith("--")]
        for source in arguments[:-1]:
            assert (PROJECT_ROOT / source).exists(), f"COPY {source}: not in the build context"


HELP_COMMANDS = (
    ("bpsync", "check", "--help"),
    ("dagster-webserver", "--help"),
    ("dagster-daemon", "run", "--help"),
    ("python", "-m", "bpsync_dagster.daemon", "run", "--help"),
)


def test_image_commands_exist_with_the_options_compose_gives_them(services: dict) -> None:
    # Each start of a dagster command costs seconds of imports: run them side by side.
    processes = {
        command: subprocess.Popen(
            [str(BIN / command[0]), *command[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command in HELP_COMMANDS
    }
    outputs = {command: process.communicate(timeout=120) for command, process in processes.items()}
    for command, process in processes.items():
        assert process.returncode == 0, (command, outputs[command][1])
    for name in ("dagster-webserver", "dagster-daemon"):
        service_command = services[name]["command"]
        (help_command,) = [c for c in HELP_COMMANDS if c[:-1] == tuple(service_command[: len(c) - 1])]
        help_text = outputs[help_command][0]
        for argument in service_command[len(help_command) - 1 :]:
            if argument.startswith("-"):
                assert re.search(rf"(^|[\s,]){re.escape(argument)}[\s,]", help_text), (name, argument)
    assert tuple(services[CODE_SERVICE]["healthcheck"]["test"][1:]) + ("--help",) in HELP_COMMANDS


def test_the_daemon_healthcheck_command_exists(services: dict) -> None:
    # In this process (dagster is imported already) rather than a fourth slow interpreter start.
    from click.testing import CliRunner
    from dagster._daemon.cli import cli as dagster_daemon

    test = services["dagster-daemon"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "dagster-daemon"]
    result = CliRunner().invoke(dagster_daemon, [*test[2:], "--help"], prog_name="dagster-daemon")
    assert result.exit_code == 0, result.output


def test_the_code_server_command_serves_the_code_location(make_node, services: dict) -> None:
    node: Node = make_node()
    command = list(services[CODE_SERVICE]["command"])
    assert command == dockerfile_exec_form("CMD")
    port = free_port()
    command[command.index("-p") + 1] = str(port)
    command[0] = str(BIN / command[0])
    log = node.root / "code-server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            command, env=node.environment(), cwd=node.root, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        client = DagsterGrpcClient(port=port)
        deadline = time.monotonic() + 60
        response = None
        while response is None:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the code server did not serve within 60 s:\n" + log.read_text()
            try:
                if client.health_check_query() == "SERVING":
                    listed = deserialize_value(client.list_repositories())
                    response = listed if isinstance(listed, ListRepositoriesResponse) else None
            except Exception:  # not listening yet
                pass
            time.sleep(0.3)
        # The check the compose stack's operators would run, as a command.
        health = subprocess.run(
            [str(BIN / "dagster"), "api", "grpc-health-check", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert health.returncode == 0, health.stdout + health.stderr
        assert response.repository_symbols, response
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- docs/scaling.md ---------------------------------------------------------------------------------


def test_scaling_doc_snippets_are_valid_instance_config() -> None:
    import importlib

    from dagster._config import process_config
    from dagster._config.field import resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config_schema

    from bpsync_dagster.jobs.sync_dataset import BatchConfig, CopyConfig

    text = (PROJECT_ROOT / "docs" / "scaling.md").read_text()
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    schema = resolve_to_config_type(dagster_instance_config_schema())
    launchers = set()
    executor_blocks = 0
    for block in blocks:
        if "ops" in block:  # run config of sync_dataset
            ops = block["ops"]["synced_dataset"]["ops"]
            assert set(ops) <= {"fetch_file_records", "plan_copy_batches", "copy_files"}
            CopyConfig(**ops["copy_files"]["config"])
            if "plan_copy_batches" in ops:
                BatchConfig(**ops["plan_copy_batches"]["config"])
            continue
        if "execution" in block:  # run config of k8s_job_executor
            executor_blocks += 1
            continue
        result = process_config(schema, block)
        assert result.success, (block, result.errors)
        for section in ("run_coordinator", "compute_logs"):
            if section in block:
                module = importlib.import_module(block[section]["module"].replace("dagster.core", "dagster._core"))
                component = getattr(module, block[section]["class"])
                checked = process_config(resolve_to_config_type(component.config_type()), block[section]["config"])
                assert checked.success, (section, checked.errors)
        if "run_launcher" in block:
            launchers.add((block["run_launcher"]["module"], block["run_launcher"]["class"]))
    # dagster-k8s and dagster-docker are not installed here; their snippets (the launchers' and the
    # k8s_job_executor's) were checked against dagster-k8s 0.29.27 and dagster-docker 0.29.27 when written.
    assert launchers == {("dagster_k8s", "K8sRunLauncher"), ("dagster_docker", "DockerRunLauncher")}
    assert executor_blocks == 1
