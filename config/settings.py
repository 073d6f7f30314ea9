"""One frozen Settings object, validated once at start-up.

Layers, later wins: the dataclass defaults, config/default.toml, the --config file,
then ZHUANDI_<SECTION>_<KEY> environment variables. Unknown sections or keys are an
error that names them, as are values of the wrong type.
"""

import dataclasses
import ipaddress
import json
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.duration import parse_duration

DEFAULT_TOML = Path(__file__).with_name("default.toml")
ENV_PREFIX = "ZHUANDI_"
# Environment variables with this prefix that are not settings.
ENV_RESERVED = {"ZHUANDI_CONFIG"}


class ConfigError(ValueError):
    """A settings file or variable is invalid; the message names the key."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 8080
    public_url: str = ""
    data_dir: str = "var"
    tls_cert: str = ""  # a PEM file, or "self-signed" to make one for a LAN pilot
    tls_key: str = ""
    # With TLS on, also answer plain http on this port with a redirect (0: off).
    http_redirect_port: int = 0
    log_format: str = "text"
    log_level: str = "info"
    max_peers: int = 500
    max_peers_per_lesson: int = 64
    # Page origins other than this server's own that may open the signalling socket
    # (e.g. "https://school.example.cn" behind a reverse proxy).
    allowed_origins: tuple[str, ...] = ()
    # A classroom or teacher whose connection drops keeps its seat this long (seconds).
    reconnect_grace: float = 60.0
    # Media worker processes: lessons are spread over them, one lesson on one worker.
    # -1: one per CPU core; 0: everything in this one process.
    workers: int = -1


@dataclass(frozen=True)
class IceServerSettings:
    urls: tuple[str, ...] = ()
    username: str = ""
    credential: str = ""


@dataclass(frozen=True)
class MediaSettings:
    ice_addresses: tuple[str, ...] = ()
    ice_servers: tuple[IceServerSettings, ...] = ()
    video_codec: str = "VP8"
    keyframe_min_interval: float = 1.0
    keyframe_cache_seconds: float = 1.0
    subscriber_queue_frames: int = 30
    # Forward through media/fastsender.py (packetize once, send from the fan-out loop)
    # rather than through aiortc's sender path.
    fast_path: bool = True
    # coturn with use-auth-secret: browsers get short-lived credentials for these URLs
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl: str = "6h"


@dataclass(frozen=True)
class TokenSettings:
    secret: str = ""
    default_ttl: str = "3h"


@dataclass(frozen=True)
class RecorderSettings:
    enabled: bool = True
    keyframe_interval: float = 10.0


@dataclass(frozen=True)
class LibrarySettings:
    process_after_lesson: bool = True
    process_delay: float = 10.0
    job_threads: int = 1
    job_nice: int = 10


@dataclass(frozen=True)
class TimetableSettings:
    # The local time of the county's timetables (an IANA zone name).
    timezone: str = "Asia/Shanghai"
    # Scheduled lessons open this many minutes before they start (a sound check).
    open_early: float = 5.0
    # A classroom's kiosk page asks for its timetable this often (seconds).
    room_poll: float = 10.0


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    recorder: RecorderSettings = field(default_factory=RecorderSettings)
    library: LibrarySettings = field(default_factory=LibrarySettings)
    timetable: TimetableSettings = field(default_factory=TimetableSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def base_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        scheme = "https" if self.server.tls_cert else "http"
        return f"{scheme}://localhost:{self.server.port}"

    def replace(self, section: str, **changes: Any) -> "Settings":
        """A copy with some keys of one section changed (validated like the rest)."""
        merged = _to_plain(self)
        merged[section].update(changes)
        return _build(Settings, merged, "")


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """Plain data (for handing the settings to a worker process)."""
    plain: dict[str, Any] = _to_plain(settings)
    return plain


def settings_from_dict(data: Mapping[str, Any]) -> Settings:
    """Settings from `settings_to_dict`'s data, validated like any other."""
    built: Settings = _build(Settings, data, "")
    return built


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the Settings. `overrides` (from command-line flags) win over everything."""
    data: dict[str, dict[str, Any]] = {}
    _merge(data, _read_toml(DEFAULT_TOML), str(DEFAULT_TOML))
    if config_file is not None:
        _merge(data, _read_toml(Path(config_file)), str(config_file))
    if environ is not None:
        _merge(data, _from_environ(environ), "environment")
    if overrides:
        _merge(data, {k: dict(v) for k, v in overrides.items()}, "command line")
    return _build(Settings, data, "")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge(into: dict[str, dict[str, Any]], layer: Mapping[str, Any], origin: str) -> None:
    sections = {f.name for f in dataclasses.fields(Settings)}
    for section, values in layer.items():
        if section not in sections:
            raise ConfigError(f"{origin}: unknown section [{section}]")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [{section}] must be a table")
        into.setdefault(section, {}).update(values)


def _from_environ(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    hints = {f.name: _section_fields(f.name) for f in dataclasses.fields(Settings)}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_RESERVED:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in hints or key not in hints[section]:
            raise ConfigError(
                f"unknown setting in environment variable {name} "
                f"(expected ZHUANDI_<SECTION>_<KEY>, e.g. ZHUANDI_SERVER_PORT)"
            )
        result.setdefault(section, {})[key] = _parse_env_value(name, raw, hints[section][key])
    return result


def _section_fields(section: str) -> dict[str, Any]:
    cls = typing.get_type_hints(Settings)[section]
    return typing.get_type_hints(cls)


def _parse_env_value(name: str, raw: str, hint: Any) -> Any:
    if hint is str:
        return raw
    origin = typing.get_origin(hint)
    if origin is tuple and typing.get_args(hint)[0] is str and not raw.lstrip().startswith("["):
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(f"{name}: cannot read {raw!r} as {_type_name(hint)}") from None


def _build(cls: type, data: Mapping[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            where = f"[{path}]" if path else "the top level"
            raise ConfigError(f"unknown setting {key!r} in {where}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            name = f"{path}.{f.name}" if path else f.name
            values[f.name] = _coerce(name, data[f.name], hints[f.name])
    instance = cls(**values)
    _validate(instance, path)
    return instance


def _coerce(name: str, value: Any, hint: Any) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a table")
        return _build(typing.cast(type, hint), value, name)
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        return tuple(_coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    if origin in (types.UnionType, typing.Union):
        raise ConfigError(f"{name}: unsupported type")  # pragma: no cover - not used
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported type {hint!r}")  # pragma: no cover


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _validate(instance: Any, path: str) -> None:
    if isinstance(instance, ServerSettings):
        if not 0 <= instance.port <= 65535:
            raise ConfigError(f"server.port must be between 0 and 65535, got {instance.port}")
        if instance.log_format not in ("text", "json"):
            raise ConfigError(
                f"server.log_format must be 'text' or 'json', not {instance.log_format!r}"
            )
        if instance.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError("server.log_level must be debug, info, warning or error")
        if instance.tls_cert != "self-signed" and bool(instance.tls_cert) != bool(instance.tls_key):
            raise ConfigError("server.tls_cert and server.tls_key must be given together")
        if instance.workers < -1 or instance.workers > 64:
            raise ConfigError("server.workers must be -1 (one per core), 0, or up to 64")
        if not 0 <= instance.http_redirect_port <= 65535:
            raise ConfigError("server.http_redirect_port must be between 0 and 65535")
        if instance.max_peers < 1 or instance.max_peers_per_lesson < 1:
            raise ConfigError("server.max_peers and server.max_peers_per_lesson must be at least 1")
    elif isinstance(instance, MediaSettings):
        for address in instance.ice_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError(
                    f"media.ice_addresses: {address!r} is not an IP address"
                ) from None
        if instance.video_codec not in ("VP8", "H264"):
            raise ConfigError(
                f"media.video_codec must be 'VP8' or 'H264', not {instance.video_codec!r}"
            )
        if instance.keyframe_min_interval <= 0 or instance.keyframe_cache_seconds < 0:
            raise ConfigError("media.keyframe_min_interval must be positive")
        if instance.subscriber_queue_frames < 2:
            raise ConfigError("media.subscriber_queue_frames must be at least 2")
        for url in instance.turn_urls:
            if not url.startswith(("turn:", "turns:")):
                raise ConfigError(f"media.turn_urls: {url!r} is not a turn: or turns: URL")
        if instance.turn_urls and not instance.turn_secret:
            raise ConfigError(
                "media.turn_urls needs media.turn_secret (coturn's static-auth-secret)"
            )
        try:
            parse_duration(instance.turn_ttl)
        except ValueError as exc:
            raise ConfigError(f"media.turn_ttl: {exc}") from None
    elif isinstance(instance, IceServerSettings):
        if not instance.urls:
            raise ConfigError(f"{path}.urls must list at least one stun:, turn: or turns: URL")
        for url in instance.urls:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ConfigError(f"{path}.urls: {url!r} is not a stun:, turn: or turns: URL")
    elif isinstance(instance, LibrarySettings):
        if instance.process_delay < 0:
            raise ConfigError("library.process_delay must not be negative")
        if not 1 <= instance.job_threads <= 16:
            raise ConfigError("library.job_threads must be between 1 and 16")
        if not 0 <= instance.job_nice <= 19:
            raise ConfigError("library.job_nice must be between 0 and 19")
    elif isinstance(instance, TimetableSettings):
        try:
            zoneinfo.ZoneInfo(instance.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"timetable.timezone: unknown time zone {instance.timezone!r}"
            ) from None
        if not 0 <= instance.open_early <= 60:
            raise ConfigError("timetable.open_early must be between 0 and 60 minutes")
        if not 0.2 <= instance.room_poll <= 300:
            raise ConfigError("timetable.room_poll must be between 0.2 and 300 seconds")
    elif isinstance(instance, TokenSettings):
        try:
            parse_duration(instance.default_ttl)
        except ValueError as exc:
            raise ConfigError(f"tokens.default_ttl: {exc}") from None
        if instance.secret and len(instance.secret) < 32:
            raise ConfigError(
                "tokens.secret must be at least 32 characters (or empty to generate one)"
            )


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value
