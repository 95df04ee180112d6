"""Start/stop the local MongoDB dev server as a separate process (tests, demo, scripts).

:class:`LocalMongoProcess` runs ``python -m devservers.mongo`` in a subprocess,
waits until it accepts connections and exposes its ``uri``. ``stop()`` sends
SIGTERM (clean shutdown), ``kill()`` SIGKILL (for durability tests) and
``restart()`` brings it back on the same port and data directory. The admin
password travels in the child's environment, never on its command line. Not
for production: it manages the DEVELOPMENT server only. A non-loopback ``host``
needs ``auth=True`` and an admin user (the server refuses to start otherwise:
``start()`` raises RuntimeError with the server's reason).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote_plus

_REPO_ROOT = Path(__file__).resolve().parents[2]


class LocalMongoProcess:
    """A local dev server in a child process; usable as a context manager."""

    def __init__(self, data_dir: Path | str, port: int = 0, auth: bool = False,
                 admin_user: str | None = None, admin_password: str | None = None,
                 ttl_interval: float | None = None, log_file: Path | None = None,
                 host: str = "127.0.0.1", startup_timeout: float = 15.0) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.host = host
        self.auth = auth
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.ttl_interval = ttl_interval
        self.log_file = Path(log_file) if log_file else self.data_dir / "local-mongod.log"
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def client_uri(self, user: str, password: str, auth_source: str = "admin") -> str:
        """URI with credentials (SCRAM-SHA-256) for an auth-enabled server."""
        return (f"mongodb://{quote_plus(user)}:{quote_plus(password)}@{self.host}:{self.port}/"
                f"?authSource={auth_source}&authMechanism=SCRAM-SHA-256")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> LocalMongoProcess:
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "devservers.mongo", "--host", self.host,
               "--port", str(self.port), "--data-dir", str(self.data_dir),
               "--log-file", str(self.log_file)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        if self.auth:
            cmd.append("--auth")
        if self.admin_user:
            env["LOCAL_MONGOD_ADMIN_USER"] = self.admin_user
            env["LOCAL_MONGOD_ADMIN_PASSWORD"] = self.admin_password or ""
        if self.ttl_interval is not None:
            cmd += ["--ttl-interval", str(self.ttl_interval)]
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env,
                                         cwd=str(_REPO_ROOT))
        line = self._read_first_line()
        if not line.startswith("mongodb://"):
            self.kill()
            code = self.proc.returncode
            raise RuntimeError(f"local-mongod did not start (exit code {code}, got {line!r}): "
                               f"{self._log_tail()}; see {self.log_file}")
        self.port = int(line.rstrip("/").rsplit(":", 1)[1])
        self._wait_accepting()
        return self

    def _read_first_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        fd = self.proc.stdout.fileno()
        buf = b""
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None and not buf:
                ready = select.select([fd], [], [], 0)[0]
                if not ready:
                    break
            ready = select.select([fd], [], [], max(0.0, min(remaining, 0.2)))[0]
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        return buf.decode(errors="replace").strip()

    def _log_tail(self, lines: int = 3) -> str:
        """The last lines of the server log (why it refused to start)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"local-mongod on port {self.port} does not accept connections")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then wait; SIGKILL if it does not exit in ``timeout`` seconds."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_pipes()

    def kill(self) -> None:
        """SIGKILL without any chance to flush (simulates a crash)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def restart(self) -> LocalMongoProcess:
        """Stop (if running) and start again on the same port and data directory."""
        self.stop()
        return self.start()

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> LocalMongoProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
