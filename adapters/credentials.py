"""Secrets come from the environment, by the name rollout.yaml gives (`token_env: LD_TOKEN`).

rollout.yaml never holds a secret value, only the variable's name, so a missing credential
is reported by that name — never by a value — and as `AuthFailed`: retrying will not make
a variable appear, so the runtime escalates at once instead of retrying.

A settings model that reads secrets may say which variables it needs with
`secret_variables()`; `tidegate targets check` reads that to report "credentials present"
without ever printing a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from adapters.errors import AuthFailed


def secret(env: Mapping[str, str], variable: str, target: str) -> str:
    """The value of `variable` in `env`; AuthFailed naming the variable when unset or empty."""
    value = env.get(variable, "")
    if not value.strip():
        raise AuthFailed(f"target {target!r}: environment variable {variable} is not set (a credential)")
    return value


@runtime_checkable
class NamesSecrets(Protocol):
    """A settings model that names the environment variables its target needs."""

    def secret_variables(self) -> tuple[str, ...]: ...


def missing(env: Mapping[str, str], variables: tuple[str, ...]) -> list[str]:
    """Which of `variables` are unset or empty in `env`: names only."""
    return [name for name in variables if not env.get(name, "").strip()]
