"""controller.yaml and the token file: loaded with file:line errors, secrets never kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.service.config import load_config
from controller.service.tokens import TOKENS_ENV, Role, TokenError, Tokens, hash_token, new_token
from policies.errors import PolicyError


def test_a_full_config_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(
        "listen: 0.0.0.0:9000\nrollouts: rollouts/\ntokens: tokens.yaml\n"
        "lease: {ttl: 20s, renew: 5s}\npoll: 100ms\n"
        "webhooks:\n  - {name: pd, vendor: pagerduty, secret_env: PD_SECRET}\n"
        "notifications:\n  - {kind: slack, name: ops, webhook_url_env: SLACK_URL}\n"
    )
    config = load_config(str(path))
    assert (config.host, config.port) == ("0.0.0.0", 9000)
    assert config.rollouts == str(tmp_path / "rollouts") and config.tokens == str(tmp_path / "tokens.yaml")
    assert (config.lease.ttl, config.lease.renew, config.poll) == (20.0, 5.0, 0.1)
    assert config.webhooks[0].vendor == "pagerduty" and config.notifications[0].name == "ops"


@pytest.mark.parametrize(
    ("text", "where", "said"),
    [
        ("listen: localhost\n", ":1:", "HOST:PORT"),
        ("lease: {ttl: 10s, renew: 8s}\n", ":1:", "at most half"),
        ("poll: soon\n", ":1:", "duration"),
        ("webhooks:\n  - {name: pd, vendor: pagerdooty, secret_env: X}\n", ":2:", "pagerduty"),
        ("replicas: 3\n", ":1:", "replicas"),
        (
            "webhooks:\n  - {name: a, vendor: generic, secret_env: X}\n"
            "  - {name: a, vendor: sentry, secret_env: Y}\n",
            ":",
            "duplicate webhook name",
        ),
    ],
)
def test_mistakes_name_the_line_and_what_was_expected(
    tmp_path: Path, text: str, where: str, said: str
) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_config(str(path))
    message = str(caught.value)
    assert f"controller.yaml{where}" in message and said in message


def test_tokens_from_a_file_of_hashes_and_the_environment(tmp_path: Path) -> None:
    alice, ci = new_token(), new_token()
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - {{name: alice, role: operator, sha256: {hash_token(alice)}}}\n")
    tokens = Tokens.load(str(path), {TOKENS_ENV: f"ci:viewer:{ci}, root:admin:{'x' * 20}"})
    assert len(tokens) == 3
    found = tokens.authenticate(alice)
    assert found is not None and (found.name, found.role) == ("alice", Role.OPERATOR)
    assert tokens.authenticate(ci) is not None and tokens.authenticate("x" * 20) is not None
    assert tokens.authenticate("nope") is None and tokens.authenticate("") is None
    assert alice not in path.read_text()  # only the hash is kept


def test_bad_token_entries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="entry 1"):
        Tokens.load(None, {TOKENS_ENV: "ci:superuser:" + "x" * 20})
    with pytest.raises(TokenError, match="at least 16"):
        Tokens.load(None, {TOKENS_ENV: "ci:viewer:short"})
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n  - {name: bob, role: operator, sha256: not-a-hash}\n")
    with pytest.raises(PolicyError, match=r"tokens\.yaml:2"):
        Tokens.load(str(path), {})
    with pytest.raises(TokenError, match="cannot read"):
        Tokens.load(str(tmp_path / "missing.yaml"), {})


def test_a_token_made_by_the_cli_authenticates_from_the_file_it_prints(tmp_path: Path) -> None:
    import subprocess

    from tests.serve_process import TIDEGATE

    done = subprocess.run(
        [TIDEGATE, "tokens", "new", "alice", "--role", "operator"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.split("token (shown once): ", 1)[1].split()[0]
    entry = done.stdout.split("tokens.yaml entry:", 1)[1].strip()
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  {entry}\n")
    found = Tokens.load(str(path), {}).authenticate(token)
    assert found is not None and (found.name, found.role) == ("alice", Role.OPERATOR)
    assert token not in path.read_text()
    bad = subprocess.run(
        [TIDEGATE, "tokens", "new", "bob", "--role", "root"], check=False, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "viewer, operator or admin" in bad.stderr
