"""Message catalogs for pages (web/i18n/*.json). Simplified Chinese by default."""

import json
from functools import cache
from pathlib import Path

from aiohttp import web

CATALOG_DIR = Path(__file__).resolve().parent.parent / "web" / "i18n"
LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"
COOKIE = "lang"


@cache
def catalog(language: str) -> dict[str, str]:
    with (CATALOG_DIR / f"{language}.json").open(encoding="utf-8") as handle:
        messages: dict[str, str] = json.load(handle)
    if language != DEFAULT:
        # a key missing in a translation falls back to Chinese, never to the key
        return {**catalog(DEFAULT), **messages}
    return messages


def pick_language(request: web.Request) -> str:
    """?lang= wins, then the cookie set by the language switch, then Chinese."""
    for candidate in (request.query.get("lang"), request.cookies.get(COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT


def translate(language: str, key: str, **values: object) -> str:
    text = catalog(language).get(key, key)
    return text.format(**values) if values else text
