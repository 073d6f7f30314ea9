"""Who gets a library lesson's files, and how: visibility with tokens (also through
file URLs and playlists), paths outside a lesson refused whatever the encoding, and
range requests."""

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.libraries import (
    copy_data,
    get,
    get_json,
    ids,
    library_server,
    prepare_catalog,
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory (its parent is what make_settings takes) with three lessons."""
    return prepare_catalog(tmp_path_factory.mktemp("prepared"))


# -- visibility, paths, ranges -------------------------------------------------------


@pytest.mark.timeout(60)
async def test_a_private_lesson_needs_its_token_also_through_file_urls(
    prepared: Path, tmp_path: Path
) -> None:
    runner, server = await library_server(copy_data(prepared, tmp_path / "copy"))
    try:
        base = server.url
        own = server.token("secret1", "observer")
        other = server.token("alg1", "observer")
        expired = server.tokens.issue("secret1", "observer", "x", -10)
        files = [
            "/library/secret1/files/lesson.mp4",
            "/library/secret1/files/hls/master.m3u8",
            "/library/secret1/files/hls/360p/index.m3u8",
            "/library/secret1/files/hls/360p/seg-00000.ts",
            "/library/secret1/files/thumbnail.jpg",
            "/api/library/secret1",
        ]
        for path in files:
            assert (await get(base + path))[0] == 401, path
            assert (await get(f"{base}{path}?token={expired}"))[0] == 401, path
            assert (await get(f"{base}{path}?token={other}"))[0] == 403, path
            assert (await get(f"{base}{path}?token={own}"))[0] == 200, path
        bearer = {"Authorization": f"Bearer {own}"}
        assert (await get(base + files[0], headers=bearer))[0] == 200
        # not listed without its token; listed with it
        _, body = await get_json(f"{base}/api/library")
        assert "secret1" not in ids(body)
        _, body = await get_json(f"{base}/api/library?token={own}")
        assert "secret1" in ids(body)
        lesson = next(x for x in body["lessons"] if x["id"] == "secret1")
        assert lesson["files"]["hls"].endswith(f"?token={own}")
        # the playlists carry the token into every URL a player follows
        status, master, _ = await get(f"{base}/library/secret1/files/hls/master.m3u8?token={own}")
        uris = [x for x in master.decode().splitlines() if x and not x.startswith("#")]
        assert uris and all(u.endswith(f"?token={own}") for u in uris)
        status, playlist, _ = await get(f"{base}/library/secret1/files/hls/{uris[0]}")
        segments = [x for x in playlist.decode().splitlines() if x and not x.startswith("#")]
        assert status == 200 and segments
        status, _, _ = await get(f"{base}/library/secret1/files/hls/360p/{segments[0]}")
        assert status == 200
        # not even its metadata shows in the list page's search suggestions
        _, page, _ = await get(f"{base}/library")
        assert "八年级" not in page.decode() and "教研课" not in page.decode()
        # the replay page refuses, in words
        status, page, _ = await get(f"{base}/library/secret1")
        assert status == 401 and 'data-code="private_lesson"' in page.decode()
        status, page, _ = await get(f"{base}/library/secret1?token={own}")
        assert status == 200 and "教研课" in page.decode()
        # public and district lessons need nothing
        assert (await get(f"{base}/library/alg1/files/lesson.mp4"))[0] == 200
        assert (await get(f"{base}/library/poem1/files/lesson.mp4"))[0] == 200
    finally:
        await runner.cleanup()


async def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """A request sent byte for byte as written (no client normalizes it)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.timeout(60)
async def test_paths_outside_a_lesson_are_refused_whatever_the_encoding(
    prepared: Path, tmp_path: Path
) -> None:
    root = copy_data(prepared, tmp_path / "copy")
    data = root / "var"
    secret = (data / "secret.key").read_bytes()
    alg1 = data / "library" / "alg1"
    (alg1 / "out.mp4").symlink_to(data / "library" / "secret1" / "lesson.mp4")
    (alg1 / "key.jpg").symlink_to(data / "secret.key")
    (alg1 / "hls" / "up.ts").symlink_to(data / "recordings" / "alg1" / "segment-0001.mkv")
    private_mp4 = (data / "library" / "secret1" / "lesson.mp4").read_bytes()
    runner, server = await library_server(root)
    try:
        base = "/library/alg1/files/"
        attempts = [
            base + "../../secret.key",
            base + "..%2f..%2fsecret.key",
            base + "%2e%2e/%2e%2e/secret.key",
            base + "%2E%2E%2F%2E%2E%2Fzhuandi.db",
            base + "..%5c..%5csecret.key",
            base + "%252e%252e/%252e%252e/secret.key",
            base + "..%252f..%252fsecret.key",
            base + "hls/../../secret1/lesson.mp4",
            base + "..%2Fsecret1%2Flesson.mp4",
            base + "%2e%2e/secret1/lesson.mp4",
            base + ".%2e/secret1/lesson.mp4",
            "/library/..%2Fsecret1/files/lesson.mp4",
            "/library/%2e%2e/secret1/files/lesson.mp4",
            base + "%2Fetc%2Fpasswd",
            base + "/etc/passwd",
            base + "status.json",
            base + ".lock",
            base + "out.mp4",  # symlinks out of the lesson
            base + "key.jpg",
            base + "hls/up.ts",
            base + "lesson.mp4%00.jpg",
            base + "hls\\..\\..\\secret1\\lesson.mp4",
        ]
        for path in attempts:
            status, body = await raw_get(server.url, path)
            assert status in (400, 401, 403, 404), (path, status)
            assert secret not in body and private_mp4[:4096] not in body, path
        assert (await raw_get(server.url, base + "lesson.mp4"))[0] == 200
        assert (await raw_get(server.url, base + "lesson.mp4?x=%2e%2e"))[0] == 200
    finally:
        await runner.cleanup()


@pytest.mark.timeout(60)
async def test_files_are_served_with_range_requests(prepared: Path, tmp_path: Path) -> None:
    runner, server = await library_server(copy_data(prepared, tmp_path / "copy"))
    try:
        url = f"{server.url}/library/alg1/files/lesson.mp4"
        whole = (server.settings.data_path / "library" / "alg1" / "lesson.mp4").read_bytes()
        size = len(whole)
        status, body, headers = await get(url, headers={"Range": "bytes=0-99"})
        assert status == 206 and body == whole[:100]
        assert headers["Content-Range"] == f"bytes 0-99/{size}"
        status, body, headers = await get(url, headers={"Range": "bytes=1000-1999"})
        assert status == 206 and body == whole[1000:2000]
        status, body, _ = await get(url, headers={"Range": "bytes=-500"})
        assert status == 206 and body == whole[-500:]
        status, _, headers = await get(url, headers={"Range": f"bytes={size + 10}-"})
        assert status == 416
        status, body, headers = await get(url)
        assert status == 200 and body == whole
        assert headers["Accept-Ranges"] == "bytes" and headers["Content-Type"] == "video/mp4"
        async with aiohttp.ClientSession() as session, session.head(url) as response:
            assert response.status == 200 and int(response.headers["Content-Length"]) == size
        _, _, headers = await get(f"{server.url}/library/alg1/files/hls/master.m3u8")
        assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
        _, _, headers = await get(f"{server.url}/library/alg1/files/hls/360p/seg-00000.ts")
        assert headers["Content-Type"] == "video/mp2t"
    finally:
        await runner.cleanup()
