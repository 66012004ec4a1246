"""App Store Connect phased release (kind `app-store`): pause and resume — there is no rollback.

    targets:
      - name: ios-app
        kind: app-store
        settings:
          issuer_id: 57246542-96fe-1a63-e053-0824d011072a
          key_id: 2X9R4HXF34
          private_key_env: ASC_PRIVATE_KEY      # the .p8 file's PEM text, from the environment
          app_id: "1234567890"                  # with `version`, or `app_store_version_id` directly
          version: "2.4.0"

What Apple's API allows (reference/apis.md §5), and so what this target declares:
- pause → PATCH the version's phased release to PAUSED; resume → ACTIVE. Re-sending the state it
  is already in is harmless, but we observe first and answer `already_done` without a PATCH.
- no `rollback`: a released build cannot be withdrawn by API. The planner therefore pauses the
  phased release and pages a human ("ship the previous version (or a fix) by hand"), and
  `tidegate plan` prints exactly that.
- no `set_traffic`: the ladder is Apple's (day 1..7 → 1, 2, 5, 10, 20, 50, 100 %) and cannot be
  set. The only "percentage" verb is COMPLETE (everyone at once), which is irreversible; exposing
  it as set_traffic(100) would make every other step (10, 50) a refusal that fails the rollout,
  and let an automatic promote skip Apple's ladder. So promote means resume: the ladder finishes
  on its own. Releasing to everyone now is a human's click in App Store Connect.
- the pause budget is 30 days in total per phased release (unlimited pauses); a pause with the
  budget used up is refused with that reason instead of sending a request Apple would reject.

`observe()` reads GET /v1/appStoreVersions/{id}/appStoreVersionPhasedRelease (there is no GET
by phased-release id): `traffic` is the ladder's percentage for `currentDayNumber` (read-only;
0 before the release starts, 100 once COMPLETE), `paused` is PAUSED, `version` the setting.

Auth: every request carries `Authorization: Bearer <JWT>`, ES256-signed with the API key
(header kid = key_id; claims iss = issuer_id, aud = appstoreconnect-v1, exp ≤ iat + 20 min).
A token is reused until a minute before it expires. The key and tokens never reach a log or an
error message (VendorHttp scrubs them). Errors are Apple's `{"errors": [{status, code, title,
detail}]}` envelope, mapped by adapters.http: 401/403 AuthFailed, 409 Precondition (STATE_ERROR,
ENTITY_ERROR), 429 RateLimited (Apple sends no Retry-After: jittered backoff), 5xx Transient.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, model_validator

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result, satisfied
from adapters.credentials import secret
from adapters.errors import AuthFailed, Permanent
from adapters.http import RetryPolicy, VendorHttp
from policies.operations import Op, Operation

if TYPE_CHECKING:  # the registry imports this module, not the other way round
    from adapters.actuators.registry import BuildContext

log = logging.getLogger("tidegate.adapters.app_store")

# Apple's fixed schedule: day of the phased release → % of users with automatic updates on.
LADDER = {1: 1, 2: 2, 3: 5, 4: 10, 5: 20, 6: 50, 7: 100}
PAUSE_LIMIT_DAYS = 30  # total pause time per phased release; the number of pauses is unlimited
TOKEN_LIFETIME = 15 * 60  # Apple rejects tokens whose exp is more than 20 minutes ahead
TOKEN_RENEW_BEFORE = 60
AUDIENCE = "appstoreconnect-v1"
CAPABILITIES = frozenset({Op.PAUSE, Op.RESUME})
_STATE_FOR = {Op.PAUSE: "PAUSED", Op.RESUME: "ACTIVE"}


class AppStoreSettings(BaseModel):
    """A phased release's coordinates and the API key that may change it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer_id: str
    key_id: str
    private_key_env: str  # name of the variable holding the .p8 PEM, never the key itself
    app_store_version_id: str | None = None
    app_id: str | None = None
    version: str | None = None  # versionString, e.g. "2.4.0"; found under app_id
    platform: Literal["IOS", "MAC_OS", "TV_OS", "VISION_OS"] = "IOS"
    base_url: str = "https://api.appstoreconnect.apple.com"

    @model_validator(mode="after")
    def _one_way_to_name_the_version(self) -> AppStoreSettings:
        by_id = self.app_store_version_id is not None
        by_app = self.app_id is not None or self.version is not None
        if by_id == by_app or (by_app and (self.app_id is None or self.version is None)):
            raise ValueError("name the version by app_store_version_id, or by app_id and version (not both)")
        return self

    def secret_variables(self) -> tuple[str, ...]:
        return (self.private_key_env,)


def capabilities_for(settings: AppStoreSettings) -> frozenset[Op]:
    return CAPABILITIES


@dataclass(frozen=True)
class PhasedRelease:
    id: str
    state: str  # INACTIVE | ACTIVE | PAUSED | COMPLETE
    day: int | None
    paused_days: int

    @property
    def percentage(self) -> int:
        if self.state == "COMPLETE":
            return 100
        if self.state == "INACTIVE" or self.day is None:
            return 0
        return LADDER[min(max(self.day, 1), 7)]

    def describe(self) -> str:
        return f"phased release {self.state} on day {self.day} ({self.percentage}%)"


class AppStore:
    """The `app-store` actuator; see the module docstring."""

    def __init__(
        self,
        name: str,
        settings: AppStoreSettings,
        client: httpx.Client,
        env: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._name = name
        self._settings = settings
        self._client = client
        self._env = env
        self._clock = clock
        self._sleep = sleep
        self._retry = retry
        self._version_id = settings.app_store_version_id
        self._token: tuple[str, float] | None = None  # (jwt, expiry)

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return CAPABILITIES

    def observe(self) -> Observed:
        return _observed(self._phased_release(self._session()), self._settings.version)

    def apply(self, operation: Operation, key: str) -> Result:
        if operation.target != self._name:
            return Refused(f"operation for target {operation.target!r} sent to {self._name!r}")
        if operation.op not in CAPABILITIES:
            return Refused(_unsupported(operation.op))
        session = self._session()
        release = self._phased_release(session)
        if satisfied(operation, _observed(release, self._settings.version)):
            return AlreadyDone(f"already {release.describe() if release else 'without a phased release'}")
        blocked = _blocked(operation.op, release)
        if blocked:
            return Refused(blocked)
        assert release is not None  # _blocked refuses a version without a phased release
        updated = self._patch(session, release, _STATE_FOR[operation.op])
        if updated.state != _STATE_FOR[operation.op]:
            raise Permanent(
                f"app-store: asked for {_STATE_FOR[operation.op]}, Apple answered {updated.state}"
            )
        return Applied(updated.describe())

    # --- App Store Connect ---------------------------------------------------------------

    def _phased_release(self, session: VendorHttp) -> PhasedRelease | None:
        version_id = self._version(session)
        body = session.request(
            "GET", f"/v1/appStoreVersions/{version_id}/appStoreVersionPhasedRelease"
        ).json()
        data = body.get("data")  # JSON:API: null when the version has no phased release
        return _parse(data) if isinstance(data, dict) else None

    def _patch(self, session: VendorHttp, release: PhasedRelease, state: str) -> PhasedRelease:
        document = {
            "data": {
                "type": "appStoreVersionPhasedReleases",
                "id": release.id,
                "attributes": {"phasedReleaseState": state},
            }
        }
        response = session.request(
            "PATCH", f"/v1/appStoreVersionPhasedReleases/{release.id}", json_body=document
        )
        return _parse(response.json()["data"])

    def _version(self, session: VendorHttp) -> str:
        if self._version_id is not None:
            return self._version_id
        s = self._settings
        params = {"filter[versionString]": str(s.version), "filter[platform]": s.platform, "limit": "2"}
        found = session.request("GET", f"/v1/apps/{s.app_id}/appStoreVersions", params=params).json()["data"]
        if not found:
            raise Permanent(f"app-store: app {s.app_id} has no {s.platform} version {s.version!r}")
        self._version_id = str(found[0]["id"])
        return self._version_id

    # --- auth ------------------------------------------------------------------------------

    def _session(self) -> VendorHttp:
        pem = secret(self._env, self._settings.private_key_env, self._name)
        token = self._bearer(pem)
        return VendorHttp(
            self._client,
            vendor="app-store",
            base_url=self._settings.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            secrets=[pem, *pem.strip().splitlines(), token],
            retry=self._retry,
            sleep=self._sleep,
            clock=self._clock,
        )

    def _bearer(self, pem: str) -> str:
        now = self._clock()
        if self._token is not None and self._token[1] - now > TOKEN_RENEW_BEFORE:
            return self._token[0]
        issued = int(now)
        claims = {
            "iss": self._settings.issuer_id,
            "iat": issued,
            "exp": issued + TOKEN_LIFETIME,
            "aud": AUDIENCE,
        }
        headers = {"kid": self._settings.key_id, "typ": "JWT"}
        token = jwt.encode(claims, _signing_key(pem, self._settings.private_key_env), "ES256", headers)
        self._token = (token, float(issued + TOKEN_LIFETIME))
        return token


def _signing_key(pem: str, variable: str) -> ec.EllipticCurvePrivateKey:
    """The .p8 key; env files often carry its newlines as literal backslash-n."""
    try:
        key = load_pem_private_key(pem.replace("\\n", "\n").encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise AuthFailed(f"app-store: {variable} does not hold an EC P-256 private key in PEM form (.p8)")
    return key


def _parse(data: dict[str, Any]) -> PhasedRelease:
    attributes = data.get("attributes") or {}
    day = attributes.get("currentDayNumber")
    return PhasedRelease(
        id=str(data["id"]),
        state=str(attributes.get("phasedReleaseState")),
        day=int(day) if day is not None else None,
        paused_days=int(attributes.get("totalPauseDuration") or 0),
    )


def _observed(release: PhasedRelease | None, version: str | None) -> Observed:
    if release is None:
        return Observed(
            version=version, detail="no phased release: the version is released to everyone at once"
        )
    return Observed(
        version=version,
        traffic=release.percentage,
        paused=release.state == "PAUSED",
        detail=f"{release.describe()}, paused {release.paused_days} of {PAUSE_LIMIT_DAYS} days",
    )


def _blocked(op: Op, release: PhasedRelease | None) -> str:
    """Why Apple would refuse this (so we do not ask), or "" when it may go ahead."""
    if release is None:
        return "app-store: this version has no phased release, so there is nothing to pause or resume"
    if release.state == "INACTIVE":
        return (
            "app-store: the phased release has not started (INACTIVE); hold the release in App Store Connect"
        )
    if release.state == "COMPLETE":
        return (
            f"app-store: the phased release is COMPLETE (everyone has the update); nothing can {op.value} it"
        )
    if op is Op.PAUSE and release.paused_days >= PAUSE_LIMIT_DAYS:
        return f"app-store: the {PAUSE_LIMIT_DAYS}-day pause budget of this phased release is used up"
    return ""


def _unsupported(op: Op) -> str:
    if op is Op.ROLLBACK:
        return "app-store cannot roll back by API: pause the phased release and ship a new version by hand"
    if op is Op.SET_TRAFFIC:
        return "app-store cannot set a percentage: Apple's 7-day ladder is fixed (pause / resume only)"
    return f"app-store cannot {op.value}"


def build(
    name: str,
    settings: AppStoreSettings,
    context: BuildContext,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    retry: RetryPolicy | None = None,
) -> AppStore:
    """The actuator for target `name`. The key is read from `context.env` at each call, not
    here: a build touches nothing, and a rotated key is picked up without a restart."""
    return AppStore(name, settings, context.client(), context.env, clock=clock, sleep=sleep, retry=retry)
