"""Join tokens: what we sign is accepted; forged, expired and misused ones are refused."""

import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from server.tokens import TokenError, Tokens, load_or_create_secret

ROOT = Path(__file__).resolve().parent.parent

SECRET = "s" * 48


def test_a_token_we_issued_is_accepted_with_its_claims() -> None:
    tokens = Tokens(SECRET)
    grant = tokens.verify(tokens.issue("maths-7", "classroom", "接收教室 1", 3600))
    assert (grant.lesson, grant.role, grant.name) == ("maths-7", "classroom", "接收教室 1")


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("", "token_missing"),
        (None, "token_missing"),
        ("not-a-jwt", "token_invalid"),
        (123, "token_invalid"),
        ("x" * 5000, "token_invalid"),
    ],
)
def test_malformed_tokens_are_refused_with_a_named_reason(token: object, code: str) -> None:
    with pytest.raises(TokenError) as refused:
        Tokens(SECRET).verify(token)
    assert refused.value.code == code
    assert refused.value.fatal


def test_a_token_signed_with_another_secret_is_refused() -> None:
    forged = Tokens("f" * 48).issue("maths", "teacher", "mallory", 3600)
    with pytest.raises(TokenError) as refused:
        Tokens(SECRET).verify(forged)
    assert refused.value.code == "token_invalid"


def test_a_token_with_alg_none_is_refused() -> None:
    claims = {
        "iss": "zhuandi",
        "lesson": "m",
        "role": "teacher",
        "name": "x",
        "iat": 1,
        "exp": 2**40,
    }
    forged = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(TokenError) as refused:
        Tokens(SECRET).verify(forged)
    assert refused.value.code == "token_invalid"


def test_a_token_with_a_tampered_role_is_refused() -> None:
    token = Tokens(SECRET).issue("maths", "classroom", "room", 3600)
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["role"] = "teacher"
    other = jwt.encode(claims, "wrong-secret-" * 4, algorithm="HS256").split(".")[1]
    with pytest.raises(TokenError) as refused:
        Tokens(SECRET).verify(f"{header}.{other}.{signature}")
    assert refused.value.code == "token_invalid"


def test_an_expired_token_is_refused_and_says_when_it_expired() -> None:
    now = [1_000_000.0]
    tokens = Tokens(SECRET, clock=lambda: now[0])
    token = tokens.issue("maths", "classroom", "room", 60)
    now[0] += 61
    with pytest.raises(TokenError) as refused:
        tokens.verify(token)
    assert refused.value.code == "token_expired"
    assert "expired" in refused.value.message


def test_a_classroom_token_cannot_be_used_as_the_teacher() -> None:
    tokens = Tokens(SECRET)
    grant = tokens.verify(tokens.issue("maths", "classroom", "room", 3600))
    with pytest.raises(TokenError) as refused:
        tokens.check(grant, role="teacher")
    assert refused.value.code == "token_wrong_role"
    with pytest.raises(TokenError) as refused:
        tokens.check(grant, lesson="physics")
    assert refused.value.code == "token_wrong_lesson"


@pytest.mark.parametrize(
    ("lesson", "role", "name"),
    [("../etc", "teacher", "x"), ("ok", "admin", "x"), ("ok", "teacher", ""), ("", "teacher", "x")],
)
def test_issuing_refuses_bad_claims(lesson: str, role: str, name: str) -> None:
    with pytest.raises(ValueError):
        Tokens(SECRET).issue(lesson, role, name, 60)


def test_the_secret_is_generated_once_and_kept_private(tmp_path) -> None:
    first = load_or_create_secret(tmp_path / "var")
    second = load_or_create_secret(tmp_path / "var")
    assert first == second and len(first) >= 32
    assert (tmp_path / "var" / "secret.key").stat().st_mode & 0o077 == 0


def test_processes_starting_together_on_a_fresh_data_dir_agree_on_one_secret(
    tmp_path: Path,
) -> None:
    # the front and its media workers start at once; each used to write its own
    # secret over the others', and a token the front issued failed on a worker
    code = (
        "import sys; from pathlib import Path; from server.tokens import load_or_create_secret\n"
        "while not Path(sys.argv[2]).exists(): pass\n"  # all start at the same moment
        "print(load_or_create_secret(Path(sys.argv[1])))"
    )
    for attempt in range(3):
        data, go = tmp_path / f"var{attempt}", tmp_path / f"go{attempt}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(data), str(go)],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(6)
        ]
        time.sleep(1.5)
        go.touch()
        secrets_seen = {p.communicate(timeout=30)[0].strip() for p in processes}
        assert len(secrets_seen) == 1, secrets_seen
        assert (data / "secret.key").read_text().strip() in secrets_seen
        assert [p.name for p in data.iterdir()] == ["secret.key"]
