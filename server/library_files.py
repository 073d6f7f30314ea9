"""Serving a lesson's renditions: /library/{lesson}/files/{path}.

Files come only from inside that lesson's own library directory, and only after
its visibility was checked. The path is refused before the disk is touched when
it could mean anything but a plain file name below the lesson: any percent
escape or backslash in the raw URL (so %2e%2e, %2f, %5c and double encodings
cannot sneak past the router's decoding), and any empty, "." or ".." part or
part starting with a dot. Then the resolved file (symlinks followed) must still
lie inside the lesson's directory.

Files are sent with aiohttp's FileResponse, which answers range requests (206) and
conditional ones. A private lesson's playlists are rewritten on the way out so
that the segment URLs carry the viewer's token, which hls.js and native players
do not add by themselves.
"""

import re
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from server.errors import UserError
from server.keys import LIBRARY, TOKENS
from server.library_access import require_view, viewer_of
from server.tokens import LESSON_ID

_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
}
# The job's bookkeeping is not for the web.
HIDDEN = {"status.json", ".lock"}


def _refused(detail: str) -> UserError:
    return UserError("bad_path", f"no such file: {detail}", status=404)


def safe_file(root: Path, lesson_id: str, raw_path: str, tail: str) -> Path:
    """The file that `tail` names inside `root/lesson_id`, or a refusal."""
    if "%" in raw_path or "\\" in raw_path or not LESSON_ID.match(lesson_id):
        raise _refused("the address is not a plain file path")
    parts = tail.split("/")
    if not parts or not all(_PART.match(part) for part in parts) or parts[-1] in HIDDEN:
        raise _refused("the address is not a plain file path")
    if Path(*parts).suffix not in CONTENT_TYPES:
        raise _refused("not a library file")
    base = (root / lesson_id).resolve()
    path = base.joinpath(*parts).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise _refused(tail)
    return path


async def lesson_file(request: web.Request) -> web.StreamResponse:
    lesson_id = request.match_info["lesson"]
    library = request.app[LIBRARY]
    # the path is checked first: nothing about the catalog leaks through odd URLs
    raw_path = request.raw_path.partition("?")[0]
    path = safe_file(library.root, lesson_id, raw_path, request.match_info["path"])
    viewer = viewer_of(request, request.app[TOKENS])
    entry = require_view(library.repository.get(lesson_id), viewer, lesson_id)
    private = entry.visibility == "private"
    headers = {
        "Content-Type": CONTENT_TYPES[path.suffix],
        "Cache-Control": "private, no-cache" if private else "public, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if path.suffix == ".m3u8" and private:
        text = path.read_text(encoding="utf-8")
        return web.Response(text=with_token(text, viewer.token), headers=headers)
    return web.FileResponse(path, headers=headers)


def with_token(playlist: str, token: str) -> str:
    """The playlist with `?token=` on every URI line."""
    suffix = "?token=" + quote(token, safe="")
    lines = []
    for line in playlist.splitlines():
        if line and not line.startswith("#"):
            line += suffix
        lines.append(line)
    return "\n".join(lines) + "\n"
