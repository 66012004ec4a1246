"""An App Store Connect API fake on loopback: versions and their phased releases (reference/apis.md §5).

- Auth: `Authorization: Bearer <JWT>` whose ES256 signature is verified with the test's public
  key; header `kid` must be the key id and `alg` ES256; claims `iss` = issuer id, `aud` =
  appstoreconnect-v1, `exp` ≤ `iat` + 20 min and not past (against the fake's clock). Anything
  else is Apple's 401 `NOT_AUTHORIZED`.
- Endpoints (paths and bodies as in specs/app-store-connect-openapi.json):
  `GET /v1/apps/{id}/appStoreVersions?filter[versionString]=&filter[platform]=`,
  `GET /v1/appStoreVersions/{id}/appStoreVersionPhasedRelease` (data null without one),
  `POST /v1/appStoreVersionPhasedReleases` (201, INACTIVE),
  `PATCH /v1/appStoreVersionPhasedReleases/{id}` (PAUSED | ACTIVE | COMPLETE),
  `DELETE /v1/appStoreVersionPhasedReleases/{id}` (204 while INACTIVE only), and the trap:
  `GET /v1/appStoreVersionPhasedReleases/{id}` is 403 FORBIDDEN_ERROR (no GET_INSTANCE).
- Every request body and every JSON answer is checked against the published schema
  (strictly: no keys the schema does not list). A bad request gets Apple's answer (400 without
  `Content-Type: application/json`, 409 ENTITY_ERROR with `source.pointer`); every problem
  is also kept in `violations` so a test can assert the adapter sent nothing off-contract.
- State machine: INACTIVE → ACTIVE (release) → PAUSED ⇄ ACTIVE → COMPLETE; the same state
  again is a 200 no-op; anything else 409 STATE_ERROR. The day counter (1..7 → 1, 2, 5, 10, 20,
  50, 100 %) advances with the clock only while ACTIVE and completes after day 7. Pauses add
  up in `totalPauseDuration` (whole days); at 30 days the release resumes by itself [inferred]
  and a further pause is a 409.
- Errors are `{"errors": [{id, status, code, title, detail}]}`; every answer carries
  `X-Rate-Limit: user-hour-lim:3500;user-hour-rem:N;`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.openapi import OpenApi
from tests.fakes.server import FakeVendor, Reply, Request


def spec() -> OpenApi:
    return OpenApi.load("app-store-connect-openapi.json")  # 3 MB: loaded on first use, once


DAY = 86_400.0
LADDER = {1: 1, 2: 2, 3: 5, 4: 10, 5: 20, 6: 50, 7: 100}
PAUSE_LIMIT = 30 * DAY
HOURLY_LIMIT = 3500
_READ_ONLY = ("startDate", "totalPauseDuration", "currentDayNumber")
_NEXT = {
    "ACTIVE": {"PAUSED", "COMPLETE"},
    "PAUSED": {"ACTIVE", "COMPLETE"},
}


def apple_error(status: int, code: str, title: str, detail: str, pointer: str | None = None) -> Reply:
    error: dict[str, Any] = {"id": str(uuid.uuid4()), "status": str(status), "code": code, "title": title}
    error["detail"] = detail
    if pointer is not None:
        error["source"] = {"pointer": pointer}
    return Reply(status, {"errors": [error]})


def not_authorized(detail: str) -> Reply:
    return apple_error(401, "NOT_AUTHORIZED", "Authentication credentials are missing or invalid.", detail)


@dataclass
class PhasedRelease:
    id: str
    version_id: str
    state: str
    since: float  # when the current ACTIVE or PAUSED stretch began
    active_before: float = 0.0  # seconds ACTIVE before `since`
    paused_before: float = 0.0  # seconds PAUSED before `since`
    started: float | None = None


@dataclass
class Version:
    id: str
    app_id: str
    version_string: str
    platform: str
    state: str = "READY_FOR_DISTRIBUTION"


class FakeAppStore(FakeVendor):
    def __init__(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        issuer_id: str,
        key_id: str,
        clock: Callable[[], float],
    ) -> None:
        super().__init__()
        self.public_key = public_key
        self.issuer_id = issuer_id
        self.key_id = key_id
        self.clock = clock
        self.versions: dict[str, Version] = {}
        self.releases: dict[str, PhasedRelease] = {}  # by phased-release id
        self.tokens: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (header, claims) accepted
        self.violations: list[str] = []
        self.patches: list[Request] = []
        self.lose_next_patch_reply = False  # apply the PATCH, then drop the connection
        self._used = 0
        app = r"/v1/apps/(?P<app>[^/]+)"
        version = r"/v1/appStoreVersions/(?P<version>[^/]+)"
        phased = r"/v1/appStoreVersionPhasedReleases"
        self.route("GET", app + "/appStoreVersions", self.list_versions)
        self.route("GET", version + "/appStoreVersionPhasedRelease", self.get_phased_release)
        self.route("POST", phased, self.create_phased_release)
        self.route("GET", phased + r"/(?P<id>[^/]+)", self.get_instance)
        self.route("PATCH", phased + r"/(?P<id>[^/]+)", self.patch_phased_release)
        self.route("DELETE", phased + r"/(?P<id>[^/]+)", self.delete_phased_release)

    # --- test set-up and inspection ---------------------------------------------------

    def add_version(
        self,
        version_id: str,
        *,
        app_id: str = "1234567890",
        version: str = "2.4.0",
        phased: str | None = "ACTIVE",
        day: int = 1,
        paused_days: float = 0.0,
    ) -> str | None:
        """A released version, with a phased release in `phased` state on `day` (or none)."""
        self.versions[version_id] = Version(version_id, app_id, version, "IOS")
        if phased is None:
            return None
        now = self.clock()
        release = PhasedRelease(f"pr-{version_id}", version_id, phased, now)
        if phased != "INACTIVE":
            release.active_before = (day - 1) * DAY
            release.paused_before = paused_days * DAY
            release.started = now - release.active_before - release.paused_before
        self.releases[release.id] = release
        return release.id

    def release_of(self, version_id: str) -> PhasedRelease:
        release = next(r for r in self.releases.values() if r.version_id == version_id)
        self._advance(release)
        return release

    def day_of(self, release: PhasedRelease) -> int:
        return min(7, 1 + int(self._active(release) // DAY))

    # --- auth ------------------------------------------------------------------------

    def authorize(self, request: Request) -> Reply | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return self._limited(not_authorized("Provide a properly configured and signed bearer token."))
        token = header.removeprefix("Bearer ")
        try:
            head = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["ES256"],
                audience="appstoreconnect-v1",
                issuer=self.issuer_id,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},  # our clock below
            )
        except jwt.PyJWTError as exc:
            return self._limited(not_authorized(f"The bearer token is invalid ({type(exc).__name__})."))
        problem = self._token_problem(head, claims)
        if problem:
            return self._limited(not_authorized(problem))
        self.tokens.append((head, claims))
        return None

    def _token_problem(self, head: dict[str, Any], claims: dict[str, Any]) -> str:
        now = self.clock()
        if head.get("kid") != self.key_id or head.get("typ") != "JWT":
            return "The bearer token names an unknown key."
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            return "The bearer token lacks iat or exp."
        if exp - iat > 20 * 60 or exp - now > 20 * 60:
            return "The bearer token expires more than 20 minutes ahead."
        if exp <= now:
            return "The bearer token has expired."
        return ""

    # --- handlers ----------------------------------------------------------------------

    def list_versions(self, request: Request) -> Reply:
        wanted = request.query.get("filter[versionString]", [None])[0]
        platform = request.query.get("filter[platform]", [None])[0]
        found = [
            self._version_resource(v)
            for v in self.versions.values()
            if v.app_id == request.params["app"]
            and wanted in (None, v.version_string)
            and platform in (None, v.platform)
        ]
        links = {"self": f"{self.url}{request.path}"}
        body = {"data": found, "links": links, "meta": {"paging": {"total": len(found), "limit": 50}}}
        return self._answer(200, body)

    def get_phased_release(self, request: Request) -> Reply:
        version = self.versions.get(request.params["version"])
        if version is None:
            return self._not_found("appStoreVersions", request.params["version"])
        release = next((r for r in self.releases.values() if r.version_id == version.id), None)
        links = {"self": f"{self.url}{request.path}"}
        if release is None:  # JSON:API: an empty to-one relationship is null
            return self._limited(Reply(200, {"data": None, "links": links}))
        body = {"data": self._resource(release), "links": links}
        return self._answer(200, body)

    def get_instance(self, request: Request) -> Reply:
        detail = (
            "The resource 'appStoreVersionPhasedReleases' does not allow 'GET_INSTANCE'."
            " Allowed operations are: CREATE, DELETE, UPDATE"
        )
        title = "This request is forbidden for security reasons"
        return self._limited(apple_error(403, "FORBIDDEN_ERROR", title, detail))

    def create_phased_release(self, request: Request) -> Reply:
        document, refusal = self._document(request)
        if refusal is not None:
            return refusal
        version_id = document["data"]["relationships"]["appStoreVersion"]["data"]["id"]
        if version_id not in self.versions:
            return self._not_found("appStoreVersions", version_id)
        if any(r.version_id == version_id for r in self.releases.values()):
            return self._entity_error(
                "This version already has a phased release.", "/data/relationships/appStoreVersion"
            )
        release = PhasedRelease(f"pr-{version_id}", version_id, "INACTIVE", self.clock())
        self.releases[release.id] = release
        body = {"data": self._resource(release), "links": {"self": f"{self.url}{request.path}"}}
        return self._answer(201, body)

    def patch_phased_release(self, request: Request) -> Reply:
        release = self.releases.get(request.params["id"])
        if release is None:
            return self._not_found("appStoreVersionPhasedReleases", request.params["id"])
        document, refusal = self._document(request)
        if refusal is not None:
            return refusal
        data = document["data"]
        if data["type"] != "appStoreVersionPhasedReleases" or data["id"] != release.id:
            return self._entity_error("The type or id in the body does not match the URL.", "/data/id")
        attributes = data.get("attributes") or {}
        for name in _READ_ONLY:
            if name in attributes:
                return self._entity_error(
                    f"The attribute '{name}' can not be modified.", f"/data/attributes/{name}"
                )
        self.patches.append(request)
        self._advance(release)
        wanted = attributes.get("phasedReleaseState")
        if wanted is not None and wanted != release.state:
            refusal = self._transition(release, wanted)
            if refusal is not None:
                return refusal
        body = {"data": self._resource(release), "links": {"self": f"{self.url}{request.path}"}}
        reply = self._answer(200, body)
        if self.lose_next_patch_reply:
            self.lose_next_patch_reply = False
            return Reply(reset=True)
        return reply

    def delete_phased_release(self, request: Request) -> Reply:
        release = self.releases.get(request.params["id"])
        if release is None:
            return self._not_found("appStoreVersionPhasedReleases", request.params["id"])
        if release.state != "INACTIVE":
            return self._state_error("A phased release that has started can not be deleted.")
        del self.releases[release.id]
        return self._limited(Reply(204))

    # --- the phased release's state machine ----------------------------------------------

    def _transition(self, release: PhasedRelease, wanted: str) -> Reply | None:
        if wanted not in _NEXT.get(release.state, set()):
            return self._state_error(f"The phased release can not go from {release.state} to {wanted}.")
        if wanted == "PAUSED" and release.paused_before >= PAUSE_LIMIT:
            return self._state_error("The phased release has already been paused for the maximum of 30 days.")
        now = self.clock()
        if release.state == "ACTIVE":
            release.active_before += now - release.since
        else:
            release.paused_before += now - release.since
        release.state, release.since = wanted, now
        return None

    def _advance(self, release: PhasedRelease) -> None:
        """Let the clock act: a long pause resumes at the budget, day 7 done completes."""
        now = self.clock()
        if release.state == "PAUSED" and release.paused_before + now - release.since >= PAUSE_LIMIT:
            resumed = release.since + PAUSE_LIMIT - release.paused_before
            release.paused_before, release.state, release.since = PAUSE_LIMIT, "ACTIVE", resumed
        if release.state == "ACTIVE" and self._active(release) >= 7 * DAY:
            release.active_before, release.state, release.since = 7 * DAY, "COMPLETE", now

    def _active(self, release: PhasedRelease) -> float:
        running = self.clock() - release.since if release.state == "ACTIVE" else 0.0
        return release.active_before + running

    def _paused(self, release: PhasedRelease) -> float:
        running = self.clock() - release.since if release.state == "PAUSED" else 0.0
        return release.paused_before + running

    # --- documents -----------------------------------------------------------------------

    def _resource(self, release: PhasedRelease) -> dict[str, Any]:
        self._advance(release)
        attributes: dict[str, Any] = {"phasedReleaseState": release.state}
        if release.state != "INACTIVE":
            started = release.started if release.started is not None else release.since
            attributes["startDate"] = datetime.fromtimestamp(started, UTC).isoformat().replace("+00:00", "Z")
            attributes["totalPauseDuration"] = int(self._paused(release) // DAY)
            attributes["currentDayNumber"] = self.day_of(release)
        return {
            "type": "appStoreVersionPhasedReleases",
            "id": release.id,
            "attributes": attributes,
            "links": {"self": f"{self.url}/v1/appStoreVersionPhasedReleases/{release.id}"},
        }

    def _version_resource(self, version: Version) -> dict[str, Any]:
        return {
            "type": "appStoreVersions",
            "id": version.id,
            "attributes": {
                "platform": version.platform,
                "versionString": version.version_string,
                "appVersionState": version.state,
                "releaseType": "MANUAL",
            },
            "links": {"self": f"{self.url}/v1/appStoreVersions/{version.id}"},
        }

    def _document(self, request: Request) -> tuple[dict[str, Any], Reply | None]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return {}, self._parameter_error("Content-Type must be application/json.")
        try:
            document = json.loads(request.body)
        except json.JSONDecodeError:
            return {}, self._parameter_error("The request body is not JSON.")
        problems = spec().request_problems(request)
        if problems:
            return {}, self._entity_error("; ".join(problems), "/data")
        return document, None

    def _answer(self, status: int, body: dict[str, Any]) -> Reply:
        return self._limited(Reply(status, body))

    def _parameter_error(self, detail: str) -> Reply:
        return self._limited(
            apple_error(400, "PARAMETER_ERROR.INVALID", "A parameter has an invalid value", detail)
        )

    def _entity_error(self, detail: str, pointer: str) -> Reply:
        title = "An attribute value is invalid."
        return self._limited(apple_error(409, "ENTITY_ERROR.ATTRIBUTE.INVALID", title, detail, pointer))

    def _state_error(self, detail: str) -> Reply:
        title = "The request cannot be fulfilled because of the state of another resource."
        return self._limited(apple_error(409, "STATE_ERROR", title, detail))

    def _not_found(self, kind: str, ident: str) -> Reply:
        detail = f"There is no resource of type '{kind}' with id '{ident}'"
        return self._limited(apple_error(404, "NOT_FOUND", "The specified resource does not exist", detail))

    def _limited(self, reply: Reply) -> Reply:
        self._used += 1
        remaining = max(0, HOURLY_LIMIT - self._used)
        reply.headers = {
            **reply.headers,
            "X-Rate-Limit": f"user-hour-lim:{HOURLY_LIMIT};user-hour-rem:{remaining};",
        }
        return reply

    def rate_limited(self) -> Reply:
        """Apple's 429: no Retry-After, the hourly budget spent."""
        detail = "We've received too many requests for this API. Please wait and try again or slow down."
        reply = apple_error(429, "RATE_LIMIT_EXCEEDED", "The request rate limit has been reached.", detail)
        reply.headers = {"X-Rate-Limit": f"user-hour-lim:{HOURLY_LIMIT};user-hour-rem:0;"}
        return reply

    def _dispatch(self, request: Request) -> Reply:
        reply = super()._dispatch(request)
        if reply.status in (404, 405) and isinstance(reply.body, dict) and "error" in reply.body:
            title = "The specified resource does not exist"
            reply = self._limited(apple_error(reply.status, "NOT_FOUND", title, str(reply.body["error"])))
        self._check(request, reply)
        return reply

    def _check(self, request: Request, reply: Reply) -> None:
        """Both sides of the exchange against the published document, into `violations`."""
        if reply.reset or (
            request.method == "GET" and request.path.startswith("/v1/appStoreVersionPhasedReleases/")
        ):
            return  # no answer at all; or the documented trap: no such operation, Apple answers 403
        problems = spec().request_problems(request)
        if not (isinstance(reply.body, dict) and "data" in reply.body and reply.body["data"] is None):
            problems += spec().response_problems(request, reply)  # JSON:API's null to-one is not in it
        self.violations.extend(f"{request.method} {request.path}: {p}" for p in problems)


def spec_problems(schema: str, instance: Any) -> list[str]:
    """Where `instance` breaks a schema of the published document (strictly: no unlisted keys)."""
    return spec()._schema_problems(f"#/components/schemas/{schema}", instance)
