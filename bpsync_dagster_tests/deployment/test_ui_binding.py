"""The Dagster UI has no authentication and can launch runs: every way this project documents or
scripts to serve it listens on 127.0.0.1 on the host, never on all interfaces."""

import re
from pathlib import Path

import yaml

from bpsync_dagster_tests.support.environment import PROJECT_ROOT

ALL_INTERFACES = ("0.0.0.0", "[::]", ":::")
DOCUMENTS = [
    PROJECT_ROOT / "README.md",
    PROJECT_ROOT / "deploy" / "README.md",
    *sorted((PROJECT_ROOT / "docs").glob("*.md")),
]
SCRIPTS = [PROJECT_ROOT / "scripts" / "demo", PROJECT_ROOT / "scripts" / "demo.py"]
COMPOSE = PROJECT_ROOT / "deploy" / "docker-compose.yml"
# A command line that serves the UI: `dagster-webserver …` or `dagster dev …`, up to the end of
# the line or of the inline code span.
UI_COMMAND = re.compile(r"(?:dagster-webserver|dagster dev)\b[^\n`]*")
LOCAL_HOST_OPTION = re.compile(r"(?:-h|--host)[ =]127\.0\.0\.1\b")


def ui_commands(path: Path) -> list[str]:
    return UI_COMMAND.findall(path.read_text())


def test_the_documents_and_scripts_name_no_address_of_all_interfaces() -> None:
    for path in [*DOCUMENTS, *SCRIPTS]:
        text = path.read_text()
        assert not [address for address in ALL_INTERFACES if address in text], f"{path} names all interfaces"


def test_every_documented_webserver_command_listens_on_loopback() -> None:
    commands = {str(path.relative_to(PROJECT_ROOT)): ui_commands(path) for path in DOCUMENTS}
    commands_with_options = [
        command for found in commands.values() for command in found if re.search(r"\s-\w|\s--\w", command)
    ]
    assert commands_with_options, f"no webserver command with options found in {sorted(commands)}"
    for command in commands_with_options:
        assert LOCAL_HOST_OPTION.search(command), f"{command!r} does not listen on 127.0.0.1 only"


def test_the_demo_serves_the_ui_on_loopback() -> None:
    source = (PROJECT_ROOT / "scripts" / "demo.py").read_text()
    (call,) = re.findall(r'Service\(\s*"dagster-webserver",\s*\[[^\]]*\]', source)
    assert '"-h", "127.0.0.1"' in call, call


def published_host_address(mapping: str | dict) -> str:
    """The host address of a compose `ports` entry: short `IP:HOST:CONTAINER` or long syntax."""
    if isinstance(mapping, dict):
        return str(mapping.get("host_ip", "0.0.0.0"))
    parts = re.sub(r"\$\{[^}]*\}", "PORT", str(mapping)).split(":")
    return parts[0] if len(parts) == 3 else "0.0.0.0"


def test_the_compose_stack_publishes_every_port_on_loopback_only() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = {name: service.get("ports") or [] for name, service in services.items()}
    assert published["dagster-webserver"], "the webserver publishes no port"
    for name, mappings in published.items():
        for mapping in mappings:
            assert published_host_address(mapping) == "127.0.0.1", f"{name} publishes {mapping} beyond this machine"
        assert services[name].get("network_mode") != "host", f"{name} shares the host's network"
