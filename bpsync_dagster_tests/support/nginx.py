"""Debian's nginx as a subprocess of a test, serving one site file from `deploy/` on loopback ports.

The site file is used as shipped except for the lines that name this machine's ports and files,
which `render_site` replaces; each of those lines must be in the file exactly once, so a changed
file fails loudly here instead of being tested half.
"""

import getpass
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bpsync_dagster_tests.support.ports import port_open

NGINX_PACKAGE = "nginx"


def nginx_binary() -> str | None:
    """Where nginx is installed (Debian puts it in /usr/sbin, which a user's PATH may lack)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def render_site(site: Path, replacements: dict[str, str]) -> str:
    """The text of `site` with each key (a whole line's content, stripped) replaced by its value."""
    text = site.read_text()
    for line, replacement in replacements.items():
        count = sum(1 for existing in text.splitlines() if existing.strip() == line)
        if count != 1:
            raise AssertionError(f"{site}: expected the line {line!r} once, found it {count} times")
        text = "\n".join(replacement if existing.strip() == line else existing for existing in text.splitlines())
    return text + "\n"


class Nginx:
    """`nginx -g 'daemon off;'` with a main configuration of its own under `directory` that includes
    `site_text`; `start()` returns once the site's port accepts connections."""

    def __init__(self, directory: Path, site_text: str, port: int) -> None:
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError(f"nginx is not installed (apt-get install -y {NGINX_PACKAGE})")
        self.binary = binary
        self.directory = directory
        self.port = port
        self.site_text = site_text
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    def _write_configuration(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        site = self.directory / "site.conf"
        site.write_text(self.site_text)
        temporary = {name: self.directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temporary.values():
            path.mkdir(exist_ok=True)
        main = self.directory / "nginx.conf"
        main.write_text(
            f"user {getpass.getuser()};\n"
            "worker_processes 1;\n"
            f"pid {self.directory / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"    access_log {self.directory / 'access.log'};\n"
            f"    client_body_temp_path {temporary['body']};\n"
            f"    proxy_temp_path {temporary['proxy']};\n"
            f"    fastcgi_temp_path {temporary['fastcgi']};\n"
            f"    uwsgi_temp_path {temporary['uwsgi']};\n"
            f"    scgi_temp_path {temporary['scgi']};\n"
            f"    include {site};\n"
            "}\n"
        )
        return main

    def log(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def start(self, timeout: float = 30) -> None:
        main = self._write_configuration()
        command = [self.binary, "-p", str(self.directory), "-e", str(self.error_log), "-c", str(main)]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            raise AssertionError(f"nginx refuses the configuration:\n{checked.stderr}")
        self._process = subprocess.Popen(
            [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"nginx did not listen on 127.0.0.1:{self.port}:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """A quick shutdown (SIGTERM), then SIGKILL if it lingers."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)
        self._process = None

    def __enter__(self) -> "Nginx":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
