"""The `zhuandi` command as an operator uses it: serve (demo, TLS, JSON logs) and token."""

import asyncio
import datetime
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def zhuandi(*args: str, env: dict[str, str] | None = None) -> list[str]:
    return [sys.executable, "-m", "server.cli", *args]


class Served:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []

    async def read_until(self, prefix: str, timeout: float = 20) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError(f"server exited; output so far: {self.lines}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if line.startswith(prefix):
                    return line


async def serve(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> Served:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *zhuandi(
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ice-address",
            "127.0.0.1",
            "--data-dir",
            str(tmp_path / "var"),
            *extra,
        ),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    return Served(process, port)


@pytest.fixture
async def stop_all() -> AsyncIterator[list[Served]]:
    running: list[Served] = []
    yield running
    for served in running:
        if served.process.returncode is None:
            served.process.terminate()
            try:
                await asyncio.wait_for(served.process.wait(), 10)
            except TimeoutError:
                served.process.kill()
                await served.process.wait()


async def test_serve_demo_prints_a_teacher_and_three_classroom_urls(
    tmp_path: Path, stop_all: list[Served]
) -> None:
    served = await serve(tmp_path, "--demo")
    stop_all.append(served)
    teacher = await served.read_until("teacher: ")
    rooms = [await served.read_until(f"classroom {i}: ") for i in (1, 2, 3)]
    urls = [teacher.split(": ", 1)[1], *(r.split(": ", 1)[1] for r in rooms)]
    assert urls[0].startswith(f"http://localhost:{served.port}/lesson/demo/teacher?token=")
    async with aiohttp.ClientSession() as http:
        for url in urls:
            async with http.get(url.replace("localhost", "127.0.0.1")) as response:
                assert response.status == 200, url
    # a second start on the same data directory reuses the same secret: old links still work
    served.process.terminate()
    assert await asyncio.wait_for(served.process.wait(), 10) == 0
    again = await serve(tmp_path)
    stop_all.append(again)
    await again.read_until("Zhuandi is serving")
    async with aiohttp.ClientSession() as http:
        url = urls[1].replace("localhost", "127.0.0.1").replace(str(served.port), str(again.port))
        async with http.get(url) as response:
            assert response.status == 200


async def test_sigterm_stops_the_server_cleanly(tmp_path: Path, stop_all: list[Served]) -> None:
    served = await serve(tmp_path)
    stop_all.append(served)
    await served.read_until("Zhuandi is serving")
    served.process.terminate()
    assert await asyncio.wait_for(served.process.wait(), 10) == 0


def make_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_serve_with_tls_serves_https_and_links_say_https(
    tmp_path: Path, stop_all: list[Served]
) -> None:
    cert, key = make_certificate(tmp_path)
    served = await serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), "--demo")
    stop_all.append(served)
    teacher = await served.read_until("teacher: ")
    assert teacher.split(": ", 1)[1].startswith("https://")
    context = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"https://localhost:{served.port}/healthz", ssl=context) as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
        # the signalling socket works over TLS too
        async with http.ws_connect(f"wss://localhost:{served.port}/ws", ssl=context) as ws:
            await ws.send_json({"type": "join", "token": "forged"})
            reply = await ws.receive_json()
            assert reply["code"] == "token_invalid"


async def test_json_logs_carry_lesson_and_peer(tmp_path: Path, stop_all: list[Served]) -> None:
    served = await serve(tmp_path, "--log-format", "json", "--demo")
    stop_all.append(served)
    classroom = await served.read_until("classroom 1: ")
    token = classroom.split("token=", 1)[1]
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"http://127.0.0.1:{served.port}/ws") as ws:
            await ws.send_json({"type": "join", "token": token})
            assert (await ws.receive_json())["type"] == "joined"
    served.process.terminate()
    await asyncio.wait_for(served.process.wait(), 10)
    assert served.process.stderr is not None
    records = [json.loads(line) for line in (await served.process.stderr.read()).splitlines()]
    joined = [r for r in records if "joined as classroom" in r["message"]]
    assert joined and joined[0]["lesson"] == "demo" and joined[0]["peer"]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_a_bad_config_file_stops_serve_with_a_named_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 80\n")
    result = subprocess.run(
        zhuandi("serve", "--config", str(config)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "'prot'" in result.stderr


def test_a_busy_port_is_reported_plainly(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            zhuandi(
                "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)
            ),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_token_prints_a_join_url_that_the_server_accepts(tmp_path: Path) -> None:
    env = {**os.environ, "ZHUANDI_SERVER_DATA_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        zhuandi(
            "token", "--lesson", "maths-7", "--role", "classroom", "--name", "村小", "--ttl", "2h"
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("http://localhost:8080/lesson/maths-7/classroom?token=")
    from server.tokens import Tokens, load_or_create_secret

    grant = Tokens(load_or_create_secret(tmp_path / "var")).verify(url.split("token=")[1])
    assert (grant.lesson, grant.role, grant.name) == ("maths-7", "classroom", "村小")
    bad = subprocess.run(
        zhuandi("token", "--lesson", "../x", "--role", "teacher"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert bad.returncode == 2 and "bad lesson id" in bad.stderr


async def test_a_self_signed_certificate_serves_https_and_http_redirects(
    tmp_path: Path, stop_all: list[Served]
) -> None:
    redirect_port = free_port()
    served = await serve(
        tmp_path, "--tls", "self-signed", "--http-redirect-port", str(redirect_port)
    )
    stop_all.append(served)
    line = await served.read_until("Zhuandi is serving")
    assert "https://" in line
    cert = tmp_path / "var" / "tls" / "self-signed.pem"
    context = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"https://localhost:{served.port}/healthz", ssl=context) as response:
            assert response.status == 200
            assert "max-age" in response.headers["Strict-Transport-Security"]
        url = f"http://localhost:{redirect_port}/lesson/x/classroom?token=abc"
        async with http.get(url, allow_redirects=False) as response:
            assert response.status == 301
            assert response.headers["Location"] == (
                f"https://localhost:{served.port}/lesson/x/classroom?token=abc"
            )
