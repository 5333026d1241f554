"""Build the bpsync-dagster image (Dockerfile) with podman or docker, whichever is installed.

    scripts/build-image [--local-base | --base-image IMAGE] [--tag NAME] [--engine podman|docker] [--rebuild]

The image is named after the content it is built from (the files the Dockerfile copies, the
Dockerfile and the base image): `bpsync-dagster:<hash>`. When an image of that name exists it is not
built again. It is also tagged NAME (default `bpsync-dagster:local`, the image of
deploy/docker-compose.yml). The content-addressed name is the only line printed on stdout; the
engine's output goes to stderr.

--base-image replaces the Dockerfile's `ARG BASE_IMAGE` (a public Python slim image). On a host that
reaches no container registry, --local-base makes a Debian bookworm + Python 3.11 base with
debootstrap from the Debian mirror apt uses (as root; about 40 s, once: the base is kept as
`localhost/bpsync-python:3.11-bookworm`).

With podman, unless CONTAINERS_CONF is set, the engine runs with a private containers.conf: the
runtime runc when it is installed (crun refuses hybrid cgroup layouts) and default ulimits no higher
than this shell's hard limits (podman's defaults exceed them on some hosts and every container then
fails to start), nproc also no higher than kernel.pid_max. Builds use the host network and, when the host has one, its CA bundle, so pip in
the build trusts what the host trusts.
"""

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IMAGE_NAME = "bpsync-dagster"
DEFAULT_TAG = f"{IMAGE_NAME}:local"
# What the Dockerfile copies; with the Dockerfile and the base image, what names the image.
CONTEXT = (
    "Dockerfile",
    "constraints.txt",
    "pyproject.toml",
    "README.md",
    "schemas",
    "bpsync_dagster",
    "dagster.yaml",
    "workspace.yaml",
)
DEBIAN_SUITE = "bookworm"
LOCAL_DEBIAN = f"localhost/bpsync-debian:{DEBIAN_SUITE}"
LOCAL_BASE = f"localhost/bpsync-python:3.11-{DEBIAN_SUITE}"
LOCAL_BASE_CONTAINERFILE = f"""\
FROM {LOCAL_DEBIAN}
ENV LANG=C.UTF-8
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \\
 && rm -rf /var/lib/apt/lists/* \\
 && python3 -m venv /usr/local
CMD ["python3"]
"""
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PID_MAX = Path("/proc/sys/kernel/pid_max")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bpsync-dagster"


def program(name: str) -> str | None:
    """A program on PATH or in the sbin directories (debootstrap and runc are there, off a user's PATH)."""
    return shutil.which(
        name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    )


class BuildError(Exception):
    """A one-line reason the image cannot be built."""


@dataclass(frozen=True)
class Engine:
    """podman or docker, with the environment to run it in."""

    program: str
    environment: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def is_podman(self) -> bool:
        return Path(self.program).name == "podman"

    def command(self, *arguments: str) -> list[str]:
        return [self.program, *arguments]

    def run(self, *arguments: str, stdin: bytes | None = None, capture: bool = False) -> str:
        """Run the engine; its output goes to stderr (or is returned, with `capture`)."""
        result = subprocess.run(
            self.command(*arguments),
            env=dict(self.environment),
            input=stdin,
            stdout=subprocess.PIPE if capture else sys.stderr,
            stderr=subprocess.PIPE if capture else None,
        )
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] if capture else []
            raise BuildError(
                f"`{' '.join(self.command(*arguments[:2]))} …` failed: {''.join(detail) or result.returncode}"
            )
        return result.stdout.decode() if capture else ""

    def image_exists(self, name: str) -> bool:
        probe = ["image", "exists", name] if self.is_podman else ["image", "inspect", name]
        return subprocess.run(self.command(*probe), env=dict(self.environment), capture_output=True).returncode == 0

    def image_id(self, name: str) -> str | None:
        if not self.image_exists(name):
            return None
        return self.run("image", "inspect", "--format", "{{.Id}}", name, capture=True).strip()

    def build_options(self, host_ca_bundle: bool = True) -> list[str]:
        """podman: docker format (keeps HEALTHCHECK), host network, the host's CA bundle for pip."""
        if not self.is_podman:
            return []
        options = ["--format", "docker", "--network=host"]
        if host_ca_bundle and HOST_CA_BUNDLE.is_file():
            options += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        return options


def podman_containers_conf(directory: Path = CACHE_DIR) -> Path:
    """A containers.conf with runc (when installed) and ulimits within this process's hard limits
    (nproc also within kernel.pid_max: runc fails to set more on some kernels)."""
    ulimits = []
    for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(limit)[1]
        if limit == resource.RLIMIT_NPROC and PID_MAX.is_file():
            pid_max = int(PID_MAX.read_text())
            hard = pid_max if hard == resource.RLIM_INFINITY else min(hard, pid_max)
        if hard != resource.RLIM_INFINITY:
            ulimits.append(f'"{name}={hard}:{hard}"')
    lines = ["[containers]", f"default_ulimits = [{', '.join(ulimits)}]"]
    if program("runc"):
        lines += ["[engine]", 'runtime = "runc"']
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "containers.conf"
    text = "\n".join(lines) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def find_engine(name: str | None = None) -> Engine:
    """The engine named (argument or CONTAINER_ENGINE), else podman, else docker whose daemon answers."""
    name = name or os.environ.get("CONTAINER_ENGINE") or None
    candidates = [name] if name else ["podman", "docker"]
    reasons = []
    for candidate in candidates:
        path = shutil.which(candidate)
        if path is None:
            reasons.append(f"{candidate} is not installed")
            continue
        environment = dict(os.environ)
        if Path(path).name == "podman" and "CONTAINERS_CONF" not in environment:
            environment["CONTAINERS_CONF"] = str(podman_containers_conf())
        engine = Engine(path, environment)
        info = subprocess.run(engine.command("info"), env=environment, capture_output=True, text=True)
        if info.returncode == 0:
            return engine
        last = (info.stderr.strip().splitlines() or [f"exit status {info.returncode}"])[-1]
        reasons.append(f"`{candidate} info` fails: {last}")
    raise BuildError("no container engine can build here: " + "; ".join(reasons))


def apt_mirror() -> str:
    """The Debian mirror apt uses here (deb822 `URIs:` or a `deb` line), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            match = re.match(r"\s*(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", line)
            if match and "security" not in match.group(1) and "debian" in match.group(1):
                return match.group(1)
    return DEFAULT_MIRROR


def make_local_base(engine: Engine, mirror: str) -> str:
    """Debian bookworm (debootstrap) with Python 3.11 as a venv in /usr/local; made once."""
    if engine.image_exists(LOCAL_BASE):
        return LOCAL_BASE
    if not engine.image_exists(LOCAL_DEBIAN):
        debootstrap_program = program("debootstrap")
        if debootstrap_program is None:
            raise BuildError("--local-base needs debootstrap (apt-get install -y debootstrap)")
        if os.geteuid() != 0:
            raise BuildError("--local-base runs debootstrap, which needs root")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bpsync-rootfs-") as rootfs:
            step(f"debootstrap {DEBIAN_SUITE} from {mirror} into {rootfs}")
            debootstrap = subprocess.run(
                [debootstrap_program, "--variant=minbase", DEBIAN_SUITE, rootfs, mirror], stdout=sys.stderr
            )
            if debootstrap.returncode != 0:
                raise BuildError(f"debootstrap {DEBIAN_SUITE} {mirror} failed (exit status {debootstrap.returncode})")
            archive = subprocess.run(["tar", "--numeric-owner", "-C", rootfs, "-c", "."], capture_output=True)
            if archive.returncode != 0:
                raise BuildError(f"tar of {rootfs} failed: {archive.stderr.decode(errors='replace').strip()}")
            engine.run("import", "--change", 'CMD ["bash"]', "-", LOCAL_DEBIAN, stdin=archive.stdout)
        step(f"{LOCAL_DEBIAN} made in {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bpsync-base-") as context:
        # No CA bundle mounted over the one the ca-certificates package writes.
        engine.run(
            "build",
            *engine.build_options(host_ca_bundle=False),
            "-t",
            LOCAL_BASE,
            "-f",
            "-",
            context,
            stdin=LOCAL_BASE_CONTAINERFILE.encode(),
        )
    step(f"{LOCAL_BASE} made in {time.monotonic() - started:.0f} s")
    return LOCAL_BASE


def context_files() -> Iterator[Path]:
    for name in CONTEXT:
        path = PROJECT_ROOT / name
        if path.is_dir():
            yield from sorted(item for item in path.rglob("*") if item.is_file() and "__pycache__" not in item.parts)
        else:
            yield path


def content_tag(base_image: str, base_id: str | None) -> str:
    """`bpsync-dagster:<hash>` of the build context's files and the base image (its ID when present)."""
    digest = hashlib.sha256(f"{base_image}\0{base_id or ''}\0".encode())
    for path in context_files():
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{IMAGE_NAME}:{digest.hexdigest()[:16]}"


def build(engine: Engine, base_image: str | None, tag: str, rebuild: bool) -> str:
    """Build (unless built before) and tag the image; return its content-addressed name."""
    build_arguments = ["--build-arg", f"BASE_IMAGE={base_image}"] if base_image else []
    name = content_tag(base_image or "", engine.image_id(base_image) if base_image else None)
    if engine.image_exists(name) and not rebuild:
        step(f"{name} exists: not built again")
    else:
        started = time.monotonic()
        engine.run(
            "build",
            *engine.build_options(),
            *build_arguments,
            "-t",
            name,
            "-f",
            str(PROJECT_ROOT / "Dockerfile"),
            str(PROJECT_ROOT),
        )
        step(f"{name} built in {time.monotonic() - started:.0f} s")
    engine.run("tag", name, tag)
    return name


def step(message: str) -> None:
    print(f"build-image: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build-image", description=__doc__.splitlines()[0])
    base = parser.add_mutually_exclusive_group()
    base.add_argument("--base-image", help="the image to build on (default: the Dockerfile's BASE_IMAGE)")
    base.add_argument(
        "--local-base", action="store_true", help=f"build on {LOCAL_BASE}, made with debootstrap if missing"
    )
    parser.add_argument("--mirror", help="Debian mirror for --local-base (default: the one apt uses)")
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"also tag the image so (default {DEFAULT_TAG})")
    parser.add_argument(
        "--engine", choices=("podman", "docker"), help="default: CONTAINER_ENGINE, else podman, else docker"
    )
    parser.add_argument("--rebuild", action="store_true", help="build even when the content-addressed image exists")
    arguments = parser.parse_args(argv)
    try:
        engine = find_engine(arguments.engine)
        step(
            f"engine {engine.program}"
            + (f" (CONTAINERS_CONF={engine.environment['CONTAINERS_CONF']})" if engine.is_podman else "")
        )
        base_image = arguments.base_image
        if arguments.local_base:
            base_image = make_local_base(engine, arguments.mirror or apt_mirror())
        print(build(engine, base_image, arguments.tag, arguments.rebuild), flush=True)
    except BuildError as error:
        print(f"build-image: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
