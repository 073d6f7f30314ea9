"""Who may see a library lesson: one function, `can_view`, used by the list, the
API, the replay page and every file URL alike.

- public: anyone.
- district: anyone who reaches this server, which a county keeps on its own
  network. (When administrator and district logins come, this is where a
  "district" viewer will be required.)
- private: only with a token signed by this server for that lesson (any role:
  the teacher's, a classroom's or an observer's link, or one made with
  `zhuandi token --lesson ID --role observer`).
"""

from dataclasses import dataclass

from aiohttp import web

from server.errors import UserError
from server.library_store import LibraryEntry
from server.tokens import Grant, Tokens


@dataclass(frozen=True)
class Viewer:
    grant: Grant | None = None  # a valid lesson token presented with the request
    token: str = ""  # that token, to carry into links the viewer follows


def can_view(entry: LibraryEntry, viewer: Viewer) -> bool:
    if entry.visibility in ("public", "district"):
        return True
    return viewer.grant is not None and viewer.grant.lesson == entry.id


def viewer_of(request: web.Request, tokens: Tokens) -> Viewer:
    """The viewer a request speaks for: a token in `?token=` or `Authorization:
    Bearer`. An invalid or expired token counts as none (private lessons are then
    refused with a reason)."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    token = token or request.query.get("token", "")
    if not token:
        return Viewer()
    try:
        return Viewer(tokens.verify(token), token)
    except UserError:
        return Viewer()


def require_view(entry: LibraryEntry | None, viewer: Viewer, lesson_id: str) -> LibraryEntry:
    """The entry, or the refusal: 404 for an unknown lesson, 401 without a token,
    403 with a token for another lesson. A private lesson's existence is not hidden
    from someone who knows its id; its contents are."""
    if entry is None:
        raise UserError("not_found", f"there is no lesson {lesson_id} in the library", status=404)
    if can_view(entry, viewer):
        return entry
    if viewer.grant is None:
        raise UserError(
            "private_lesson", "this lesson is private: open it with its link", status=401
        )
    raise UserError("token_wrong_lesson", "this link belongs to another lesson", status=403)
