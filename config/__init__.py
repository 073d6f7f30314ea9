"""Settings: defaults in code, then config/default.toml, then a --config file and
ZHUANDI_* environment variables. A leaf package: it imports none of ours."""

from config.duration import parse_duration
from config.settings import (
    ConfigError,
    IceServerSettings,
    LibrarySettings,
    MediaSettings,
    RecorderSettings,
    ServerSettings,
    Settings,
    TimetableSettings,
    TokenSettings,
    load_settings,
    settings_from_dict,
    settings_to_dict,
)

__all__ = [
    "ConfigError",
    "IceServerSettings",
    "LibrarySettings",
    "MediaSettings",
    "RecorderSettings",
    "ServerSettings",
    "Settings",
    "TimetableSettings",
    "TokenSettings",
    "load_settings",
    "parse_duration",
    "settings_from_dict",
    "settings_to_dict",
]
