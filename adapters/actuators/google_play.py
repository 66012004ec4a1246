"""Google Play staged rollout (kind `google-play`): userFraction steps, halt, resume, "rollback".

    targets:
      - name: android-app
        kind: google-play
        settings:
          package_name: com.example.shop
          track: production                         # default
          service_account_env: PLAY_SERVICE_ACCOUNT  # the service account's JSON key, from the environment

Every change is one edit transaction (reference/apis.md §6): `edits.insert` → `edits.tracks.get`
→ `edits.tracks.update` → `edits.commit`; reading is insert → get → `edits.delete`. A new edit
invalidates the same user's open one, so there are never two at once: a per-package lock in
this process covers the whole transaction (several targets on one app take turns). Another
process or a Play Console change can still invalidate our edit; the API then answers 400 "This
Edit has been deleted" (or 404, or 409 concurrentUpdate): the whole transaction starts again
with a new edit, observing first — never is a lost edit taken for success — up to 3 times,
then Precondition. Two controllers must not drive one app with one service account.

What each operation does to the release tidegate moves (the track's inProgress or halted
release, else its draft) and the track's completed release (what everyone else gets):
- set_traffic(p): 0 < p < 100 → status inProgress, userFraction p / 100 (units trap: Play's
  userFraction is a fraction 0 < f < 1, so 10 % is 0.1; observe() reports round(f × 100));
  100 → status completed (no userFraction; it supersedes the previous completed release);
  0 → halted (userFraction must stay above 0).
- pause → halted (fraction kept); resume → inProgress with the same fraction (a halted release
  that had been completed goes back to completed). Nothing staged: pause and resume have
  nothing to do and say so.
- rollback(to) → halt. Halting a staged release leaves new users on the completed release;
  halting a completed release (when nothing is staged) makes Play serve the previous completed
  release again (Help 16285429; not for a track's first release). What the API cannot do:
  downgrade anyone — users who installed the halted build keep it; the real fix is a new build
  with a higher versionCode. After halting, the track is read again: if Play does not now serve
  `to`, the result is Refused with what it serves instead, so a human is paged. With the new
  release already halted and `to` still not served, nothing more is halted: Refused.

`version` matching: `to` may be a release name ("2.3.9") or one of its versionCodes ("123").
observe(): version = the release new users get (the inProgress one, else the completed one),
traffic = the inProgress release's share (0 when halted or draft, 100 with only a completed
release), paused = halted.

Auth: the service-account key (JSON) → an RS256 JWT (kid = private_key_id, iss = client_email,
scope androidpublisher, aud = the token endpoint) exchanged at the token endpoint (JWT bearer
grant) for an access token, reused until a minute before expiry and dropped when the API
refuses it. Key, assertion and token never reach a log or an error (VendorHttp scrubs them).
Errors: Google's envelope via adapters.http — 401/403 AuthFailed (a token endpoint
`invalid_grant` too), 409 concurrentUpdate a fresh edit (Precondition after 3), 412 and a 403
"…existing users to upgrade…" Precondition, 429 RESOURCE_EXHAUSTED RateLimited, 5xx Transient,
other 4xx (400 invalidValue, 404 notFound) Permanent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result
from adapters.credentials import secret
from adapters.errors import ActuatorError, AuthFailed, Precondition
from adapters.google_oauth import ServiceAccountTokens
from adapters.http import RetryPolicy, VendorHttp, vendor_message
from policies.operations import Op, Operation

if TYPE_CHECKING:  # the registry imports this module, not the other way round
    from adapters.actuators.registry import BuildContext

log = logging.getLogger("tidegate.adapters.google_play")

CAPABILITIES = frozenset({Op.SET_TRAFFIC, Op.PAUSE, Op.RESUME, Op.ROLLBACK})
SCOPE = "https://www.googleapis.com/auth/androidpublisher"
EDIT_ATTEMPTS = 3  # fresh edits tried when another editor keeps invalidating ours
STAGED = ("inProgress", "halted")

T = TypeVar("T")
_locks_guard = threading.Lock()
_edit_locks: dict[str, threading.Lock] = {}


class GooglePlaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    package_name: str = Field(min_length=1)
    track: str = Field(default="production", min_length=1)
    service_account_env: str = Field(min_length=1)  # names the variable holding the JSON key
    token_uri: str | None = None  # default: the key's token_uri, else Google's
    base_url: str = Field(default="https://androidpublisher.googleapis.com", pattern=r"^https?://")

    def secret_variables(self) -> tuple[str, ...]:
        return (self.service_account_env,)


def capabilities_for(settings: GooglePlaySettings) -> frozenset[Op]:
    return CAPABILITIES


@dataclass(frozen=True)
class Release:
    wire: dict[str, Any]  # as Play sent it: sent back with only status / userFraction changed

    @property
    def status(self) -> str:
        return str(self.wire.get("status", "statusUnspecified"))

    @property
    def fraction(self) -> float | None:
        value = self.wire.get("userFraction")
        return float(value) if value is not None else None

    @property
    def label(self) -> str:
        return str(self.wire.get("name") or ",".join(self.wire.get("versionCodes", [])))

    def is_version(self, version: str) -> bool:
        return version == self.wire.get("name") or version in self.wire.get("versionCodes", [])

    def becomes(self, status: str, fraction: float | None = None) -> dict[str, Any]:
        wire = {k: v for k, v in self.wire.items() if k != "userFraction"}
        return wire | {"status": status} | ({"userFraction": fraction} if fraction is not None else {})

    def describe(self) -> str:
        share = f" {_percent(self.fraction)}%" if self.fraction is not None else ""
        return f"{self.label} {self.status}{share}"


@dataclass(frozen=True)
class TrackState:
    track: str
    releases: tuple[Release, ...]

    @property
    def staged(self) -> Release | None:
        """The release being rolled out: inProgress or halted, else a draft."""
        for statuses in (STAGED, ("draft",)):
            found = next((r for r in self.releases if r.status in statuses), None)
            if found is not None:
                return found
        return None

    @property
    def completed(self) -> Release | None:
        return next((r for r in self.releases if r.status == "completed"), None)

    @property
    def serving(self) -> Release | None:
        """The release new users get."""
        staged = self.staged
        return staged if staged is not None and staged.status == "inProgress" else self.completed

    def observed(self) -> Observed:
        staged, serving = self.staged, self.serving
        if staged is not None and staged.status == "inProgress":
            traffic = _percent(staged.fraction)
        else:
            traffic = 100 if staged is None and self.completed is not None else 0
        detail = "; ".join(r.describe() for r in self.releases) or "no releases"
        return Observed(
            version=serving.label if serving is not None else None,
            traffic=traffic,
            paused=staged is not None and staged.status == "halted",
            detail=f"{self.track}: {detail}",
        )

    def others(self, *moved: Release) -> list[dict[str, Any]]:
        return [r.wire for r in self.releases if all(r is not m for m in moved)]


@dataclass(frozen=True)
class Change:
    releases: list[dict[str, Any]]
    detail: str
    verify: str | None = None  # rollback: the version Play must serve afterwards


@dataclass
class _Edit:
    id: str
    committed: bool = False


class _EditLost(Precondition):
    """Our edit was invalidated (a newer edit, another commit, expiry): start over."""


class GooglePlay:
    """The `google-play` actuator; see the module docstring."""

    def __init__(
        self,
        name: str,
        settings: GooglePlaySettings,
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
        self._tokens = ServiceAccountTokens(
            client, scope=SCOPE, token_uri=settings.token_uri, clock=clock, sleep=sleep, retry=retry
        )
        package = quote(settings.package_name, safe="")
        self._app = f"/androidpublisher/v3/applications/{package}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return CAPABILITIES

    def observe(self) -> Observed:
        with _edit_lock(self._settings.package_name):
            return self._retrying_lost_edits(lambda session, edit: self._track(session, edit).observed())

    def apply(self, operation: Operation, key: str) -> Result:
        refused = _malformed(operation, self._name)
        if refused:
            return Refused(refused)
        with _edit_lock(self._settings.package_name):
            result = self._retrying_lost_edits(lambda session, edit: self._change(session, edit, operation))
            if isinstance(result, Change):
                return self._verified(result)
        return result

    # --- one edit transaction ------------------------------------------------------------

    def _change(self, session: VendorHttp, edit: _Edit, operation: Operation) -> Result | Change:
        state = self._track(session, edit)
        planned = plan_change(operation, state)
        if not isinstance(planned, Change):
            return planned
        body = {"track": self._settings.track, "releases": planned.releases}
        session.request("PUT", f"{self._app}/edits/{edit.id}/tracks/{self._track_path}", json_body=body)
        session.request("POST", f"{self._app}/edits/{edit.id}:commit")
        edit.committed = True
        log.info("%s: %s", self._name, planned.detail, extra={"target": self._name})
        return planned

    def _verified(self, change: Change) -> Result:
        if change.verify is None:
            return Applied(change.detail)
        after = self._retrying_lost_edits(self._track)
        serving = after.serving
        if serving is not None and serving.is_version(change.verify):
            return Applied(f"{change.detail}; new users get {serving.label}")
        now = serving.label if serving is not None else "nothing"
        return Refused(
            f"google-play: {change.detail}, but Play now serves {now}, not {change.verify}: ship "
            f"{change.verify}'s code as a new build with a higher versionCode"
        )

    def _retrying_lost_edits(self, work: Callable[[VendorHttp, _Edit], T]) -> T:
        lost: _EditLost | None = None
        for _ in range(EDIT_ATTEMPTS):
            session = self._session()
            try:
                with self._edit(session) as edit:
                    return work(session, edit)
            except _EditLost as error:
                lost = error
            except AuthFailed:
                self._tokens.forget()  # a refused token is not reused
                raise
        assert lost is not None
        raise Precondition(f"google-play: our edit was invalidated {EDIT_ATTEMPTS} times in a row ({lost})")

    @contextmanager
    def _edit(self, session: VendorHttp) -> Iterator[_Edit]:
        """An open edit, closed afterwards: committed by the work, else deleted (so it does not
        linger until it expires); on failure deleted once, best effort."""
        edit = _Edit(str(session.request("POST", f"{self._app}/edits", json_body={}).json()["id"]))
        try:
            yield edit
        except (_EditLost, AuthFailed):
            raise  # nothing to close, or no right to
        except BaseException:
            with suppress(ActuatorError):
                self._discard(edit, self._session(RetryPolicy(attempts=1)))
            raise
        if not edit.committed:
            self._discard(edit, session)

    def _discard(self, edit: _Edit, session: VendorHttp) -> None:
        with suppress(ActuatorError):  # the next insert invalidates it anyway
            session.request("DELETE", f"{self._app}/edits/{edit.id}", ok=(200, 204))

    def _track(self, session: VendorHttp, edit: _Edit) -> TrackState:
        body = session.request("GET", f"{self._app}/edits/{edit.id}/tracks/{self._track_path}").json()
        return TrackState(self._settings.track, tuple(Release(r) for r in body.get("releases") or []))

    @property
    def _track_path(self) -> str:
        return quote(self._settings.track, safe=":")

    # --- auth ------------------------------------------------------------------------------

    def _session(self, retry: RetryPolicy | None = None) -> VendorHttp:
        variable = self._settings.service_account_env
        raw = secret(self._env, variable, self._name)
        token = self._tokens.token(raw, variable)
        return VendorHttp(
            self._client,
            vendor="google-play",
            base_url=self._settings.base_url,
            headers={"Authorization": f"Bearer {token}"},
            secrets=self._tokens.secrets(raw),
            retry=retry or self._retry,
            classify=_classify,
            sleep=self._sleep,
            clock=self._clock,
        )


# --- deciding the change: pure ---------------------------------------------------------------


def plan_change(operation: Operation, state: TrackState) -> Result | Change:
    """What `operation` does to this track: nothing (AlreadyDone / Refused) or the new releases."""
    op, staged = operation.op, state.staged
    if op is Op.ROLLBACK:
        return _rollback(str(operation.version), state)
    if staged is None or staged.status == "draft":
        return _nothing_staged(operation, state)
    if op is Op.PAUSE or (op is Op.SET_TRAFFIC and operation.traffic == 0):
        if staged.status == "halted":
            return AlreadyDone(f"already halted: {staged.describe()}")
        halted = staged.becomes("halted", staged.fraction)
        return Change([halted, *state.others(staged)], f"halted {staged.describe()}")
    if op is Op.RESUME:
        if staged.status == "inProgress":
            return AlreadyDone(f"already rolling out: {staged.describe()}")
        if staged.fraction is None:  # a halted release that had been completed
            return Change([staged.becomes("completed")], f"resumed {staged.label} to completed")
        resumed = staged.becomes("inProgress", staged.fraction)
        return Change(
            [resumed, *state.others(staged)], f"resumed {staged.label} at {_percent(staged.fraction)}%"
        )
    return _step(int(operation.traffic or 0), staged, state)


def _step(percent: int, staged: Release, state: TrackState) -> Result | Change:
    if staged.status == "inProgress" and _percent(staged.fraction) == percent:
        return AlreadyDone(f"already {staged.describe()}")
    if percent == 100:
        return Change([staged.becomes("completed")], f"completed {staged.label} (100%)")
    fraction = percent / 100  # userFraction is a fraction: 10 % is 0.1
    return Change(
        [staged.becomes("inProgress", fraction), *state.others(staged)],
        f"{staged.label} inProgress {percent}%",
    )


def _nothing_staged(operation: Operation, state: TrackState) -> Result | Change:
    """Only a draft, or only a completed release: pause / resume have nothing to act on."""
    draft, completed, op = state.staged, state.completed, operation.op
    if op in (Op.PAUSE, Op.RESUME):
        current = draft or completed
        now = current.describe() if current is not None else "no releases"
        return AlreadyDone(f"nothing is being rolled out on {state.track} ({now}): nothing to {op.value}")
    percent = int(operation.traffic or 0)
    if draft is not None:
        return (
            AlreadyDone(f"{draft.describe()} is served to no one")
            if percent == 0
            else _step(percent, draft, state)
        )
    if completed is not None and percent == 100:
        return AlreadyDone(f"already completed: {completed.describe()}")
    return Refused(f"google-play: no release to roll out on {state.track}: upload it (as a draft) first")


def _rollback(to: str, state: TrackState) -> Result | Change:
    staged, completed, serving = state.staged, state.completed, state.serving
    if serving is not None and serving.is_version(to):
        return AlreadyDone(f"new users already get {serving.label}")
    if staged is not None and staged.status == "inProgress":
        halted = staged.becomes("halted", staged.fraction)
        return Change([halted, *state.others(staged)], _halt_detail(staged), verify=to)
    if (
        staged is not None
    ):  # already halted (or a draft): halting the completed release too would go further back
        now = serving.label if serving is not None else "nothing"
        return Refused(
            f"google-play: {staged.describe()} is not served to new users; Play serves {now}, not {to}:"
            f" ship {to}'s code as a new build with a higher versionCode"
        )
    if completed is not None:
        # Halting a completed release makes Play serve the previous completed one again.
        halted = completed.becomes("halted")
        return Change([halted, *state.others(completed)], _halt_detail(completed), verify=to)
    return Refused(f"google-play: {state.track} serves no release, so there is nothing to roll back to {to}")


def _halt_detail(release: Release) -> str:
    return f"halted {release.describe()} (users who installed it keep it: Play cannot downgrade)"


def _malformed(operation: Operation, name: str) -> str:
    if operation.target != name:
        return f"operation for target {operation.target!r} sent to {name!r}"
    if operation.op not in CAPABILITIES:
        return f"google-play cannot {operation.op.value}"
    if operation.op is Op.SET_TRAFFIC and (operation.traffic is None or not 0 <= operation.traffic <= 100):
        return f"set_traffic needs a percentage in 0..100, got {operation.traffic}"
    if operation.op is Op.ROLLBACK and not operation.version:
        return "rollback needs the version (release name or versionCode) to roll back to"
    return ""


def _percent(fraction: float | None) -> int:
    return round((fraction or 0.0) * 100)


# --- errors ----------------------------------------------------------------------------------


def _classify(response: httpx.Response, text: str) -> ActuatorError | None:
    status, said = response.status_code, vendor_message(response).lower()
    on_edit = "/edits" in response.request.url.path
    if on_edit and ((status in (400, 404) and "edit" in said) or status == 409):
        return _EditLost(text)  # deleted, committed, expired or concurrently changed: a new edit
    if status == 403 and "upgrade" in said:  # a downgrade that strands existing users
        return Precondition(text)
    return None


@contextmanager
def _edit_lock(package: str) -> Iterator[None]:
    with _locks_guard:
        lock = _edit_locks.setdefault(package, threading.Lock())
    with lock:
        yield


def build(
    name: str,
    settings: GooglePlaySettings,
    context: BuildContext,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    retry: RetryPolicy | None = None,
) -> GooglePlay:
    """The actuator for target `name`; the key is read from `context.env` at each call."""
    return GooglePlay(name, settings, context.client(), context.env, clock=clock, sleep=sleep, retry=retry)
