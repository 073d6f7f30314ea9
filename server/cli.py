"""The `zhuandi` command: serve, token, classroom, library, and the county's admin,
directory, device and schedule."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from config import ConfigError, Settings, load_settings, parse_duration
from server.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(f"zhuandi: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zhuandi", description="专递课堂 live classroom server")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server")
    _config_flag(serve)
    serve.add_argument("--host", help="listen address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")
    serve.add_argument(
        "--ice-address",
        action="append",
        dest="ice_addresses",
        metavar="IP",
        help="an address offered as ICE host candidate (repeat; default: all of this machine's)",
    )
    serve.add_argument(
        "--ice-server",
        action="append",
        dest="ice_servers",
        metavar="URL",
        help="a stun:/turn: URL given to browsers (repeat; credentials go in the config file)",
    )
    serve.add_argument(
        "--tls",
        choices=["self-signed"],
        help="make and use a self-signed certificate (a LAN pilot; browsers will warn once)",
    )
    serve.add_argument("--tls-cert", help="TLS certificate (PEM)")
    serve.add_argument("--tls-key", help="TLS private key (PEM)")
    serve.add_argument(
        "--http-redirect-port",
        type=int,
        help="with TLS on, redirect plain http on this port to https",
    )
    serve.add_argument("--public-url", help="the URL that printed links start with")
    serve.add_argument("--data-dir", help="where the database and recordings live (default var)")
    serve.add_argument("--log-format", choices=["text", "json"])
    serve.add_argument("--demo", action="store_true", help="print a demo lesson's join URLs")
    serve.add_argument(
        "--workers",
        type=int,
        help="media worker processes (default: one per CPU core; 0: all in one process)",
    )
    serve.set_defaults(run=_serve)

    token = sub.add_parser("token", help="print a join URL for a lesson")
    _config_flag(token)
    token.add_argument(
        "--lesson", required=True, help="lesson id; '*' with --role observer: every lesson"
    )
    token.add_argument("--role", required=True, choices=["teacher", "classroom", "observer"])
    token.add_argument("--name", help="name shown to others (default: the role)")
    token.add_argument("--ttl", help="lifetime, e.g. 45m, 2h, 1d (default from settings)")
    token.set_defaults(run=_token)

    classroom = sub.add_parser("classroom", help="join a lesson from a script (aiortc)")
    classroom.add_argument("url", help="a join URL, as printed by `zhuandi token`")
    classroom.add_argument("--record", metavar="FILE", help="save what arrives (.mkv), as sent")
    classroom.add_argument(
        "--publish", metavar="FILE", help="send this media file instead of a camera"
    )
    classroom.add_argument(
        "--duration", type=float, help="leave after this many seconds (default: stay)"
    )
    classroom.add_argument("--quiet", action="store_true", help="no progress lines")
    classroom.add_argument(
        "--quality",
        choices=["auto", "high", "low", "audio"],
        help="the most this classroom receives (default auto: what its line carries)",
    )
    classroom.add_argument(
        "--raise-hand", action="store_true", help="raise the classroom's hand once joined"
    )
    classroom.set_defaults(run=_classroom)

    from server.county_cli import add_county_commands
    from server.library_cli import add_library_commands

    add_library_commands(sub)
    add_county_commands(sub)
    return parser


def _config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="settings file (TOML); also ZHUANDI_CONFIG"
    )


def _settings(
    args: argparse.Namespace, overrides: dict[str, dict[str, Any]] | None = None
) -> Settings:
    config_file = args.config or os.environ.get("ZHUANDI_CONFIG") or None
    return load_settings(config_file, os.environ, overrides)


def _serve(args: argparse.Namespace) -> int:
    server: dict[str, Any] = {}
    media: dict[str, Any] = {}
    for flag, key in (
        ("host", "host"),
        ("port", "port"),
        ("tls_cert", "tls_cert"),
        ("tls_key", "tls_key"),
        ("public_url", "public_url"),
        ("data_dir", "data_dir"),
        ("log_format", "log_format"),
        ("http_redirect_port", "http_redirect_port"),
        ("workers", "workers"),
    ):
        if getattr(args, flag) is not None:
            server[key] = getattr(args, flag)
    if args.tls == "self-signed":
        server["tls_cert"] = "self-signed"
    if args.ice_addresses:
        media["ice_addresses"] = args.ice_addresses
    if args.ice_servers:
        media["ice_servers"] = [{"urls": [url]} for url in args.ice_servers]
    settings = _settings(args, {"server": server, "media": media})
    configure_logging(settings.server.log_format, settings.server.log_level)
    from server.serve import run_server

    asyncio.run(run_server(settings, demo=args.demo))
    return 0


def _token(args: argparse.Namespace) -> int:
    from server.tokens import ANY_LESSON, Tokens, load_or_create_secret

    settings = _settings(args)
    secret = settings.tokens.secret or load_or_create_secret(settings.data_path)
    try:
        ttl = parse_duration(args.ttl or settings.tokens.default_ttl)
        name = (
            args.name
            or {"teacher": "主讲教室", "classroom": "接收教室", "observer": "巡课"}[args.role]
        )
        token = Tokens(secret).issue(args.lesson, args.role, name, ttl)
    except ValueError as exc:
        print(f"zhuandi token: {exc}", file=sys.stderr)
        return 2
    if args.lesson == ANY_LESSON:
        # an observer of every lesson starts on the observation wall
        print(f"{settings.base_url}/observe?token={token}")
    else:
        print(f"{settings.base_url}/lesson/{args.lesson}/{args.role}?token={token}")
    return 0


def _classroom(args: argparse.Namespace) -> int:
    from server.client import run_client

    configure_logging("text", "warning")
    return asyncio.run(
        run_client(
            args.url,
            record=args.record,
            publish=args.publish,
            duration=args.duration,
            quiet=args.quiet,
            quality=args.quality,
            raise_hand=args.raise_hand,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
