"""Settings: layered, strict, and every mistake named."""

from pathlib import Path

import pytest

from config import ConfigError, load_settings, parse_duration


def test_defaults_come_from_the_shipped_file() -> None:
    settings = load_settings()
    assert settings.server.port == 8080
    assert settings.media.video_codec == "VP8"
    assert settings.base_url == "http://localhost:8080"


def test_a_config_file_then_environment_then_flags_override(tmp_path: Path) -> None:
    path = tmp_path / "zhuandi.toml"
    path.write_text(
        '[server]\nport = 9000\nhost = "10.0.0.5"\n[media]\nice_addresses = ["10.0.0.5"]\n'
    )
    settings = load_settings(path, {"ZHUANDI_SERVER_PORT": "9100"}, {"server": {"host": "0.0.0.0"}})
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"
    assert settings.media.ice_addresses == ("10.0.0.5",)


def test_environment_lists_may_be_comma_separated() -> None:
    settings = load_settings(None, {"ZHUANDI_MEDIA_ICE_ADDRESSES": "10.0.0.1, 10.0.0.2"})
    assert settings.media.ice_addresses == ("10.0.0.1", "10.0.0.2")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[server]\nprot = 1\n", "'prot'"),
        ("[sever]\nport = 1\n", "[sever]"),
        ("[server]\nport = 'x'\n", "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[media]\nice_addresses = ['not-an-ip']\n", "not-an-ip"),
        ("[media]\nvideo_codec = 'AV1'\n", "video_codec"),
        ("[media]\n[[media.ice_servers]]\nurls = ['http://x']\n", "ice_servers"),
        ("[tokens]\ndefault_ttl = 'soon'\n", "default_ttl"),
        ("[server]\ntls_cert = 'a.pem'\n", "tls_key"),
        ("not toml = = \n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_problem(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert named in str(refused.value)


def test_an_unknown_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"ZHUANDI_SERVER_PROT": "1"})
    assert "ZHUANDI_SERVER_PROT" in str(refused.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(tmp_path / "nope.toml")
    assert "nope.toml" in str(refused.value)


def test_ice_servers_are_read_as_tables(tmp_path: Path) -> None:
    path = tmp_path / "ice.toml"
    path.write_text(
        '[[media.ice_servers]]\nurls = ["turn:turn.example.org:3478?transport=tcp"]\n'
        'username = "u"\ncredential = "p"\n'
    )
    server = load_settings(path).media.ice_servers[0]
    assert server.urls == ("turn:turn.example.org:3478?transport=tcp",)
    assert server.username == "u"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("45", 45)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0", "2w"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
