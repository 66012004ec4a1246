"""Bearer tokens and roles for the API: viewer reads, operator acts by hand, admin registers.

Two places, both optional, merged:
- a file of hashes (controller.yaml `tokens:`), so the file can sit in a repository:

      tokens:
        - {name: alice, role: operator, sha256: 5e88…}   # `tidegate tokens hash` prints it

- `$TIDEGATE_TOKENS`: `name:role:token` entries separated by commas, for containers whose
  secrets arrive as environment variables.

A request's token is hashed and compared in constant time with every known hash; the
token's name is the actor in the audit log. The plain token is never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from policies.errors import TidegateError
from policies.loader import validate_located
from policies.yamlmap import load_located

TOKENS_ENV = "TIDEGATE_TOKENS"


class Role(IntEnum):
    """Ordered: each role may do everything the ones below it may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


class TokenError(TidegateError):
    pass


class _TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    role: str = Field(pattern=r"^(viewer|operator|admin)$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: tuple[_TokenEntry, ...]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "tg_" + secrets.token_urlsafe(32)


class Tokens:
    def __init__(self, entries: Mapping[str, Principal]) -> None:
        self._by_hash = dict(entries)  # sha256 hex → principal

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, token: str) -> Principal | None:
        presented = hash_token(token)
        found = None
        for known, principal in self._by_hash.items():  # every entry: no early exit to time
            if hmac.compare_digest(known, presented):
                found = principal
        return found

    @classmethod
    def load(cls, path: str | None, env: Mapping[str, str]) -> Tokens:
        entries: dict[str, Principal] = {}
        if path is not None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise TokenError(f"{path}: cannot read the token file: {exc.strerror}") from None
            parsed = validate_located(load_located(text, path), _TokenFile, None)
            for entry in parsed.tokens:
                entries[entry.sha256] = Principal(entry.name, Role[entry.role.upper()])
        listed = [part.strip() for part in env.get(TOKENS_ENV, "").split(",") if part.strip()]
        for index, item in enumerate(listed):
            name, _, rest = item.partition(":")
            role, _, token = rest.partition(":")
            if not name or role.upper() not in Role.__members__ or len(token) < 16:
                raise TokenError(
                    f"${TOKENS_ENV} entry {index + 1}: expected name:role:token with role viewer, "
                    "operator or admin and a token of at least 16 characters"
                )
            entries[hash_token(token)] = Principal(name, Role[role.upper()])
        return cls(entries)
