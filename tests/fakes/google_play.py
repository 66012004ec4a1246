"""A Google Play Developer API (Android Publisher v3) fake on loopback: edits, tracks, OAuth.

Reproduces reference/apis.md §6:
- `POST /token` — the OAuth token endpoint: a JWT bearer grant whose RS256 assertion is
  verified with the service account's public key (kid, iss, aud = this endpoint, scope, exp ≤
  iat + 1 h, not expired by the fake's clock) → `{access_token, expires_in, token_type}`; else
  400 `{"error": "invalid_grant", "error_description": …}`.
- API calls need `Authorization: Bearer <a token it issued, unexpired>`: missing → 401
  `required`, unknown or expired → 401 `authError`; an account without access to the app →
  403 `userInsufficientPermission`. Errors use Google's envelope
  `{"error": {code, message, status, errors: [{message, domain, reason}]}}`.
- Edits are snapshots of the app: `POST …/edits` (invalidates the same user's open edit),
  `GET …/edits/{id}`, `GET|PUT|PATCH …/edits/{id}/tracks/{track}`, `GET …/edits/{id}/tracks`,
  `POST …/edits/{id}:validate`, `POST …/edits/{id}:commit` (makes the snapshot live and
  invalidates every other open edit of the app), `DELETE …/edits/{id}`. An invalidated edit
  answers 400 "This Edit has been deleted.", a committed one 400 "…already been successfully
  committed.", an expired one 400 FAILED_PRECONDITION, an unknown one 404; each such use is
  counted in `stale_edit_uses`, and `edits_invalidated` counts open edits a new one replaced.
- Track bodies are checked against the discovery document's `Track` / `TrackRelease` schema
  (specs/androidpublisher.v3.json, from google-api-python-client 2.202.0), strictly (an
  unknown field is Google's 400 "Unknown name"), and the rules: `track` matches the path,
  `userFraction` only with inProgress / halted and 0 < f < 1 (inProgress needs one),
  versionCodes uploaded, at most one completed and one staged release.
- Semantics: a release set completed supersedes the previous completed one (kept in the
  track's history); halting a completed release serves the previous completed release again
  (refused for the first release of a track); resuming it to completed supersedes that again.
- Hooks: `console_change(package)` (a Play Console edit invalidates open API edits) and
  `console_changes_after_reads` (the same, right after the next N track reads),
  `track_read_faults`, `lose_next_commit_reply`, `slow_track_reads` (seconds, widens race
  windows), and `inject(...)` from FakeVendor for 429 / 5xx.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jsonschema import Draft4Validator

from tests.fakes.server import FakeVendor, Reply, Request

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
EDIT_LIFETIME = 3600  # seconds an edit stays usable [inferred]
DISCOVERY = Path(__file__).resolve().parent / "specs" / "androidpublisher.v3.json"


def google_error(code: int, status: str, reason: str, message: str, domain: str = "global") -> Reply:
    errors = [{"message": message, "domain": domain, "reason": reason}]
    return Reply(code, {"error": {"code": code, "message": message, "status": status, "errors": errors}})


def schema_problems(definition: str, instance: Any) -> list[str]:
    """Where `instance` breaks the discovery document's schema (strictly: no unlisted keys, as
    Google answers 400 "Invalid JSON payload received. Unknown name …")."""
    validator = Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": _definitions()})
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    ]


@cache
def _definitions() -> dict[str, Any]:
    """The discovery document's `schemas` as JSON Schema: `$ref: Name` → `#/definitions/Name`."""

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        skip = ("id", "description", "enumDescriptions")
        out = {k: convert(v) for k, v in node.items() if k not in skip and k != "properties"}
        if isinstance(node.get("properties"), dict):  # property names kept, even one called "id"
            out["properties"] = {name: convert(p) for name, p in node["properties"].items()}
        if isinstance(node.get("$ref"), str):
            out["$ref"] = f"#/definitions/{node['$ref']}"
        if "properties" in node and "additionalProperties" not in node:
            out["additionalProperties"] = False
        return out

    return {name: convert(schema) for name, schema in json.loads(DISCOVERY.read_text())["schemas"].items()}


@dataclass
class App:
    tracks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # superseded completed releases
    bundles: set[str] = field(default_factory=set)  # uploaded versionCodes


@dataclass
class Edit:
    id: str
    package: str
    user: str
    expiry: float
    snapshot: App
    state: str = "open"  # open | deleted | committed


def _same(one: dict[str, Any], other: dict[str, Any]) -> bool:
    return bool(one.get("versionCodes") == other.get("versionCodes"))


def _invalid(reason: str, message: str, status: str = "INVALID_ARGUMENT") -> None:
    raise _Refusal(google_error(400, status, reason, message))


class _Refusal(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply.body))
        self.reply = reply


class FakeGooglePlay(FakeVendor):
    def __init__(self, *, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.accounts: dict[str, tuple[rsa.RSAPublicKey, str]] = {}  # email → (public key, key id)
        self.access: dict[str, set[str]] = {}  # email → packages it may edit
        self.tokens: dict[str, tuple[str, float]] = {}  # access token → (email, expiry)
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (header, claims) accepted
        self.apps: dict[str, App] = {}
        self.edits: dict[str, Edit] = {}
        self.violations: list[str] = []
        self.stale_edit_uses = 0
        self.edits_invalidated = 0
        self.commits: list[Request] = []
        self.track_updates: list[Any] = []
        self.lose_next_commit_reply = False
        self.slow_track_reads = 0.0
        self.track_read_faults: list[Reply] = []  # answers for the next track reads instead of the track
        self.console_changes_after_reads = 0  # the next N track reads are followed by a Console change
        app = r"/androidpublisher/v3/applications/(?P<package>[^/]+)"
        edit = app + r"/edits/(?P<edit>[^/:]+)"
        self.route("POST", r"/token", self.token)
        self.route("POST", app + r"/edits", self.insert_edit)
        self.route("GET", edit, self.get_edit)
        self.route("DELETE", edit, self.delete_edit)
        self.route("POST", edit + r":commit", self.commit_edit)
        self.route("POST", edit + r":validate", self.validate_edit)
        self.route("GET", edit + r"/tracks", self.list_tracks)
        self.route("GET", edit + r"/tracks/(?P<track>[^/]+)", self.get_track)
        self.route("PUT", edit + r"/tracks/(?P<track>[^/]+)", self.update_track)
        self.route("PATCH", edit + r"/tracks/(?P<track>[^/]+)", self.update_track)

    # --- test set-up and inspection ---------------------------------------------------

    def add_account(self, email: str, public_key: rsa.RSAPublicKey, key_id: str, packages: set[str]) -> None:
        self.accounts[email] = (public_key, key_id)
        self.access[email] = packages

    def add_app(self, package: str, bundles: set[str], **tracks: list[dict[str, Any]]) -> None:
        self.apps[package] = App(
            {t: copy.deepcopy(r) for t, r in tracks.items()}, {t: [] for t in tracks}, bundles
        )

    def releases(self, package: str, track: str = "production") -> list[dict[str, Any]]:
        return self.apps[package].tracks.get(track, [])

    def console_change(self, package: str) -> None:
        """Someone changed the app in the Play Console: open API edits are invalidated."""
        for edit in self.edits.values():
            if edit.package == package and edit.state == "open":
                edit.state = "deleted"

    def open_edits(self, package: str) -> list[Edit]:
        return [e for e in self.edits.values() if e.package == package and e.state == "open"]

    # --- OAuth ---------------------------------------------------------------------------

    def token(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."})
        problem = self._assertion_problem(form.get("assertion", ""))
        if problem:
            return Reply(400, {"error": "invalid_grant", "error_description": problem})
        claims = jwt.decode(form["assertion"], options={"verify_signature": False})
        token = f"ya29.fake-{uuid.uuid4().hex}"
        self.tokens[token] = (claims["iss"], self.clock() + 3600)
        return Reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _assertion_problem(self, assertion: str) -> str:
        try:
            header = jwt.get_unverified_header(assertion)
            email = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            public_key, key_id = self.accounts[email]
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256"],
                audience=f"{self.url}/token",
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},  # our clock below
            )
        except (jwt.PyJWTError, KeyError):
            return "Invalid JWT Signature."
        if header.get("kid") != key_id:
            return "Invalid JWT: kid does not name a key of this account."
        if claims.get("scope") != SCOPE:
            return "Invalid OAuth scope or ID token audience provided."
        now = self.clock()
        if claims["exp"] - claims["iat"] > 3600 or claims["exp"] <= now or claims["iat"] > now + 60:
            return (
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
            )
        self.assertions.append((header, claims))
        return ""

    def authorize(self, request: Request) -> Reply | None:
        if request.path == "/token":
            return None
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            message = "Request is missing required authentication credential."
            return google_error(401, "UNAUTHENTICATED", "required", message)
        owner = self.tokens.get(header.removeprefix("Bearer "))
        if owner is None or owner[1] <= self.clock():
            return google_error(401, "UNAUTHENTICATED", "authError", "Invalid Credentials")
        package = request.path.split("/applications/", 1)[-1].split("/", 1)[0]
        if package not in self.access.get(owner[0], set()):
            message = "The caller does not have permission"
            return google_error(403, "PERMISSION_DENIED", "userInsufficientPermission", message)
        request.headers["x-fake-user"] = owner[0]
        return None

    # --- edits ---------------------------------------------------------------------------

    def insert_edit(self, request: Request) -> Reply:
        package, user = request.params["package"], request.headers["x-fake-user"]
        app = self.apps.get(package)
        if app is None:
            return google_error(404, "NOT_FOUND", "notFound", f"Package not found: {package}.")
        for edit in self.open_edits(package):
            if edit.user == user:  # one active edit per app per user
                edit.state = "deleted"
                self.edits_invalidated += 1
        edit = Edit(uuid.uuid4().hex[:20], package, user, self.clock() + EDIT_LIFETIME, copy.deepcopy(app))
        self.edits[edit.id] = edit
        return self._answer(200, {"id": edit.id, "expiryTimeSeconds": str(int(edit.expiry))}, "AppEdit")

    def get_edit(self, request: Request) -> Reply:
        return self._with_edit(request, self._app_edit)

    def delete_edit(self, request: Request) -> Reply:
        def delete(edit: Edit) -> Reply:
            edit.state = "deleted"
            return Reply(204)

        return self._with_edit(request, delete)

    def validate_edit(self, request: Request) -> Reply:
        return self._with_edit(request, self._app_edit)

    def commit_edit(self, request: Request) -> Reply:
        def commit(edit: Edit) -> Reply:
            if request.query.get("changesNotSentForReview", ["false"])[0] == "true":
                message = (
                    "Changes are sent for review automatically. changesNotSentForReview must not be set."
                )
                return google_error(400, "FAILED_PRECONDITION", "badRequest", message)
            self.apps[edit.package] = edit.snapshot
            edit.state = "committed"
            for other in self.open_edits(edit.package):  # the first commit invalidates the others
                other.state = "deleted"
            self.commits.append(request)
            if self.lose_next_commit_reply:
                self.lose_next_commit_reply = False
                return Reply(reset=True)
            return self._app_edit(edit)

        return self._with_edit(request, commit)

    def _with_edit(self, request: Request, then: Callable[[Edit], Reply]) -> Reply:
        edit = self.edits.get(request.params["edit"])
        if edit is None or edit.package != request.params["package"]:
            self.stale_edit_uses += 1
            return google_error(404, "NOT_FOUND", "notFound", f"No edit with id {request.params['edit']}.")
        if edit.state != "open" or edit.expiry <= self.clock():
            self.stale_edit_uses += 1
            if edit.state == "committed":
                message = "This Edit has already been successfully committed."
                return google_error(
                    400, "INVALID_ARGUMENT", "editAlreadyCommitted", message, "androidpublisher"
                )
            if edit.state == "deleted":
                return google_error(
                    400, "INVALID_ARGUMENT", "editDeleted", "This Edit has been deleted.", "androidpublisher"
                )
            return google_error(
                400, "FAILED_PRECONDITION", "editExpired", "This Edit has expired.", "androidpublisher"
            )
        return then(edit)

    def _app_edit(self, edit: Edit) -> Reply:
        return self._answer(200, {"id": edit.id, "expiryTimeSeconds": str(int(edit.expiry))}, "AppEdit")

    # --- tracks --------------------------------------------------------------------------

    def list_tracks(self, request: Request) -> Reply:
        def listing(edit: Edit) -> Reply:
            tracks = [{"track": t, "releases": r} for t, r in edit.snapshot.tracks.items()]
            return Reply(200, {"kind": "androidpublisher#tracksListResponse", "tracks": tracks})

        return self._with_edit(request, listing)

    def get_track(self, request: Request) -> Reply:
        def read(edit: Edit) -> Reply:
            if self.track_read_faults:
                return self.track_read_faults.pop(0)
            track = request.params["track"]
            if track not in edit.snapshot.tracks:
                return google_error(404, "NOT_FOUND", "notFound", f"Track not found: {track}.")
            reply = self._answer(200, {"track": track, "releases": edit.snapshot.tracks[track]}, "Track")
            reply.delay = self.slow_track_reads
            if self.console_changes_after_reads > 0:
                self.console_changes_after_reads -= 1
                self.console_change(edit.package)
            return reply

        return self._with_edit(request, read)

    def update_track(self, request: Request) -> Reply:
        def update(edit: Edit) -> Reply:
            try:
                body = request.json()
            except json.JSONDecodeError:
                return google_error(400, "INVALID_ARGUMENT", "parseError", "Invalid JSON payload received.")
            self.track_updates.append(body)
            try:
                self._check_track(request.params["track"], body, edit.snapshot)
                self._apply_track(request.params["track"], body["releases"], edit.snapshot)
            except _Refusal as refusal:
                return refusal.reply
            return self._answer(
                200, {"track": request.params["track"], "releases": body["releases"]}, "Track"
            )

        return self._with_edit(request, update)

    def _check_track(self, track: str, body: Any, app: App) -> None:
        problems = schema_problems("Track", body)
        if problems:
            self.violations.extend(f"Track: {p}" for p in problems)
            _invalid("invalid", "Invalid JSON payload received. " + "; ".join(problems))
        if body.get("track") != track:
            _invalid("invalidValue", "Track names in request path and request body must match.")
        releases = body.get("releases") or []
        for release in releases:
            self._check_release(release, app)
        staged = sum(r.get("status") in ("inProgress", "halted") for r in releases)
        if sum(r.get("status") == "completed" for r in releases) > 1 or staged > 1:
            _invalid("invalidValue", "A track may have one completed and one staged release.")

    def _check_release(self, release: dict[str, Any], app: App) -> None:
        status, fraction = release.get("status"), release.get("userFraction")
        if fraction is not None and status not in ("inProgress", "halted"):
            _invalid(
                "invalidValue",
                f"userFraction can only be set for inProgress or halted releases, not {status}.",
            )
        if fraction is not None and not 0 < fraction < 1:
            _invalid("invalidValue", f"userFraction must be in (0, 1), got {fraction}.")
        if status == "inProgress" and fraction is None:
            _invalid("required", "An inProgress release needs a userFraction.")
        unknown = [code for code in release.get("versionCodes", []) if code not in app.bundles]
        if unknown:
            _invalid("invalidValue", f"Version codes not uploaded: {unknown}.")

    def _apply_track(self, track: str, releases: list[dict[str, Any]], app: App) -> None:
        """The track becomes `releases`, with Play's bookkeeping of completed releases."""
        history = app.history.setdefault(track, [])
        was = next((r for r in app.tracks.get(track, []) if r.get("status") == "completed"), None)
        new = copy.deepcopy(releases)
        if was is not None and any(_same(r, was) and r.get("status") == "halted" for r in new):
            if not history:
                _invalid(
                    "invalidValue",
                    "The first release on a track cannot be halted once completed.",
                    "FAILED_PRECONDITION",
                )
            new.append(history.pop() | {"status": "completed"})  # the previous full release is served again
        now = next((r for r in new if r.get("status") == "completed"), None)
        if was is not None and now is not None and not any(_same(r, was) for r in new):
            history.append(was)  # superseded by the new completed release
        app.tracks[track] = new

    def _answer(self, status: int, body: dict[str, Any], definition: str) -> Reply:
        problems = schema_problems(definition, body)
        self.violations.extend(f"answer {definition}: {p}" for p in problems)
        return Reply(status, body)
