"""coturn for tests: Debian's `turnserver`, started on loopback with a temporary
config, using the TURN REST API's shared secret (`use-auth-secret`), as
docs/operations.md sets it up for a county. No TLS, no CLI, no database of users.

    with Coturn(tmp_path) as turn:
        settings = make_settings(tmp_path, media=turn.media_settings())
"""

import contextlib
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

TURNSERVER = "turnserver"
REALM = "zhuandi.test"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def skip_without_coturn() -> None:
    if shutil.which(TURNSERVER) is None:
        pytest.skip("coturn is not installed (apt-get install coturn; .ci/run does)")


class Coturn:
    """A turnserver process on 127.0.0.1, stopped on the way out."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.host = host
        self.secret = secrets.token_urlsafe(24)
        self.port = free_port()
        self.log = workdir / "turnserver.log"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        # relays in a window of 200 ports, away from the usual ephemeral ones
        low = 40000 + secrets.randbelow(80) * 100
        return "\n".join(
            [
                f"listening-ip={self.host}",
                f"relay-ip={self.host}",
                f"listening-port={self.port}",
                f"min-port={low}",
                f"max-port={low + 199}",
                "use-auth-secret",
                f"static-auth-secret={self.secret}",
                f"realm={REALM}",
                "fingerprint",
                "no-cli",
                "no-tls",
                "no-dtls",
                "no-rfc5780",
                "no-software-attribute",
                "no-multicast-peers",
                # the Zhuandi server of a test listens on loopback too
                "allow-loopback-peers",
                f"userdb={self.workdir / 'turndb'}",
                f"pidfile={self.workdir / 'turnserver.pid'}",
                "simple-log",
                "verbose",
                "",
            ]
        )

    def start(self) -> "Coturn":
        path = self.workdir / "turnserver.conf"
        path.write_text(self.config())
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [TURNSERVER, "-c", str(path), "--log-file", "stdout"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"turnserver exited:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"turnserver did not listen within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def urls(self, *transports: str) -> list[str]:
        return [f"turn:{self.host}:{self.port}?transport={t}" for t in transports or ("udp",)]

    def media_settings(self, *transports: str) -> dict[str, Any]:
        """Zhuandi's [media] settings that point browsers at this server."""
        return {"turn_urls": self.urls(*transports), "turn_secret": self.secret, "turn_ttl": "1h"}

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> "Coturn":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
