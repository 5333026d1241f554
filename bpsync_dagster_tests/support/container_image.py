"""The project's container image, built by scripts/build-image, and commands run in it.

The image is built on `BPSYNC_TEST_BASE_IMAGE` when that is set, else on the local Debian base
(`--local-base`) when debootstrap can make it (root), else on the Dockerfile's default base. The
build script names the image by its content, so a session whose sources did not change builds
nothing.
"""

import importlib.util
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bpsync_dagster_tests.support.environment import PROJECT_ROOT

BUILD_SCRIPT = PROJECT_ROOT / "scripts" / "build-image"


def build_module() -> ModuleType:
    """scripts/build_image.py, for the engine it finds and the environment it runs the engine in."""
    spec = importlib.util.spec_from_file_location("build_image", PROJECT_ROOT / "scripts" / "build_image.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def base_arguments(module: ModuleType) -> list[str]:
    base = os.environ.get("BPSYNC_TEST_BASE_IMAGE")
    if base:
        return ["--base-image", base]
    if module.program("debootstrap") and os.geteuid() == 0:
        return ["--local-base"]
    return []


@dataclass(frozen=True)
class ContainerImage:
    engine: Any  # the Engine of scripts/build_image.py, a module loaded from its path
    name: str

    def run(
        self,
        *command: str,
        environment: Mapping[str, str],
        mounts: Mapping[Path, str],
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` in a fresh container on the host network, as the image's user; `environment`
        is passed by name only (`--env NAME`), so no value shows in the engine's command line."""
        arguments = ["run", "--rm", "--network=host"]
        for name in environment:
            arguments += ["--env", name]
        for source, target in mounts.items():
            arguments += ["-v", f"{source}:{target}:ro"]
        return subprocess.run(
            self.engine.command(*arguments, self.name, *command),
            env={**self.engine.environment, **environment},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def user(self) -> str:
        inspected = subprocess.run(
            self.engine.command("image", "inspect", "--format", "{{.Config.User}}", self.name),
            env=dict(self.engine.environment),
            capture_output=True,
            text=True,
            check=True,
        )
        return inspected.stdout.strip()


def built_image() -> ContainerImage:
    """Build the image with scripts/build-image (or find it built); skip when no engine can build."""
    module = build_module()
    try:
        engine = module.find_engine()
    except module.BuildError as error:
        pytest.skip(str(error))
    result = subprocess.run(
        [str(BUILD_SCRIPT), *base_arguments(module)], env=dict(engine.environment), capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/build-image failed:\n{result.stderr[-4000:]}", pytrace=False)
    return ContainerImage(engine, result.stdout.strip().splitlines()[-1])
