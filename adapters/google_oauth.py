"""Google OAuth 2.0 for a service account: its JSON key → an access token (JWT bearer grant).

    tokens = ServiceAccountTokens(client, scope=SCOPE, token_uri=None, clock=time.time, sleep=time.sleep)
    token = tokens.token(raw_json_key, "PLAY_SERVICE_ACCOUNT")   # cached until a minute before expiry

The assertion is an RS256 JWT (header kid = private_key_id; claims iss = client_email, scope,
aud = the token endpoint, exp = iat + 1 h), POSTed form-encoded to the token endpoint
(`token_uri` setting, else the key's own `token_uri`, else Google's) with grant type
`urn:ietf:params:oauth:grant-type:jwt-bearer`; the answer is `{access_token, expires_in}`
(reference/apis.md §6). The call goes through VendorHttp like every other; a refused grant
(`invalid_grant`, `invalid_client`, `unauthorized_client`) is AuthFailed, never retried.
A key that is not JSON with `client_email` and an RSA `private_key` is AuthFailed naming the
variable, never quoting it. `secrets(raw)` lists every value an error message must not show.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import jwt

from adapters.errors import ActuatorError, AuthFailed
from adapters.http import RetryPolicy, VendorHttp

DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # Google accepts at most an hour
RENEW_BEFORE = 60
_REFUSED_GRANTS = ("invalid_grant", "invalid_client", "unauthorized_client")


@dataclass(frozen=True)
class ServiceAccount:
    email: str
    private_key: str
    key_id: str
    token_uri: str | None

    @staticmethod
    def parse(raw: str, variable: str) -> ServiceAccount:
        try:
            key = json.loads(raw)
            return ServiceAccount(
                email=str(key["client_email"]),
                private_key=str(key["private_key"]),
                key_id=str(key.get("private_key_id", "")),
                token_uri=key.get("token_uri"),
            )
        except (json.JSONDecodeError, KeyError, TypeError):
            raise AuthFailed(
                f"{variable} does not hold a Google service-account JSON key (client_email, private_key)"
            ) from None


class ServiceAccountTokens:
    def __init__(
        self,
        client: httpx.Client,
        *,
        scope: str,
        token_uri: str | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = client
        self._scope = scope
        self._token_uri = token_uri
        self._clock = clock
        self._sleep = sleep
        self._retry = retry
        self._cached: tuple[str, float] | None = None  # (access token, expiry)

    def token(self, raw: str, variable: str) -> str:
        now = self._clock()
        if self._cached is not None and self._cached[1] - now > RENEW_BEFORE:
            return self._cached[0]
        account = ServiceAccount.parse(raw, variable)
        token_uri = self._token_uri or account.token_uri or DEFAULT_TOKEN_URI
        assertion = self._assertion(account, token_uri, int(now), variable)
        oauth = VendorHttp(
            self._client,
            vendor="google oauth",
            base_url=token_uri,
            secrets=[*self.secrets(raw), assertion],
            retry=self._retry,
            classify=_refused_grant,
            sleep=self._sleep,
            clock=self._clock,
        )
        form = urlencode({"grant_type": GRANT_TYPE, "assertion": assertion}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        answer = oauth.request("POST", "", content=form, headers=headers).json()
        token = str(answer["access_token"])
        self._cached = (token, now + float(answer.get("expires_in", ASSERTION_LIFETIME)))
        return token

    def forget(self) -> None:
        """Drop the cached token (the API refused it): the next call asks for a new one."""
        self._cached = None

    def secrets(self, raw: str) -> list[str]:
        cached = [self._cached[0]] if self._cached is not None else []
        try:
            key = ServiceAccount.parse(raw, "").private_key
        except AuthFailed:
            return [raw, *cached]
        return [raw, key, *key.replace("\\n", "\n").strip().splitlines(), *cached]

    def _assertion(self, account: ServiceAccount, token_uri: str, issued: int, variable: str) -> str:
        claims = {"iss": account.email, "scope": self._scope, "aud": token_uri, "iat": issued}
        claims["exp"] = issued + ASSERTION_LIFETIME
        try:
            return jwt.encode(claims, account.private_key, "RS256", {"kid": account.key_id})
        except (ValueError, TypeError, jwt.PyJWTError):
            raise AuthFailed(f"the private_key in {variable} is not an RSA private key in PEM form") from None


def _refused_grant(response: httpx.Response, text: str) -> ActuatorError | None:
    try:
        error = response.json().get("error")
    except (json.JSONDecodeError, ValueError, AttributeError):
        error = None
    if response.status_code in (400, 401) and error in _REFUSED_GRANTS:
        return AuthFailed(text)
    return None
