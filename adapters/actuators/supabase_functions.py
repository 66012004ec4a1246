"""Supabase Edge Functions: roll a function back by redeploying the bundle tidegate saved.

    targets:
      - name: checkout-fn
        kind: supabase-functions
        settings: {project_ref: abcdefghijklmnopqrst, function: checkout,
                   token_env: SUPABASE_ACCESS_TOKEN, bundle_dir: .tidegate/supabase-bundles}

Supabase keeps no history: a function has an integer `version` that grows with every deploy,
only the *current* bundle can be downloaded (`GET …/functions/{slug}/body`) and there is no
rollback endpoint (reference/apis.md §4). So tidegate keeps the sources itself:

- `save_current(version)` downloads the deployed bundle and keeps it under `version` (the
  name rollout.yaml uses, e.g. "v1"). Run it before deploying a new release, e.g. in CI:

      fn = supabase_functions.build("checkout-fn", settings, BuildContext(Path(".tidegate"), os.environ))
      fn.save_current("v1")          # then `supabase functions deploy checkout`

- observe() also saves, unnamed, every deployed version it has not seen (`save_on_observe`),
  so a version tidegate watched can be rolled back to by its Supabase number ("7").
- rollback(to) redeploys the saved bundle with `PATCH …/functions/{slug}` (body
  `application/vnd.denoland.eszip`, the saved entrypoint/import-map/verify_jwt as query) —
  which makes a NEW, higher Supabase version. "Already done" is therefore judged by content,
  never by the integer: the sha256 of the deployed bundle against the saved one. tidegate
  records which Supabase version carries which bundle (keyed by the function's id, which a
  delete + recreate changes); a version it has not recorded is downloaded and hashed. So a
  crash after the PATCH but before the journal's result finds the bundle deployed and
  answers AlreadyDone instead of deploying it again. [assumption: the body endpoint returns
  the bundle as uploaded, so a redeployed bundle hashes as saved — true of the fake; if the
  real API re-encodes it, re-applying redeploys once more, which is safe, only noisy.]

Where bundles live: `bundle_dir`, else `<state_dir>/supabase-functions`, then
`<project_ref>/<function>/`: `bundles/<sha256>.eszip` (content-addressed) and `index.json`
(names → sha256, Supabase versions → sha256, each bundle's deploy metadata), both written
to a temporary file and renamed, so a crash leaves the old or the new file, never half of
one. `tidegate run` gives each rollout its own state_dir; a bundle must outlive the rollout
that saved it, so set `bundle_dir` to one durable folder shared by the save step and every
rollout of the function.

Rate limit: 60 requests a minute per user, then every call of that user is blocked for a
minute (apis.md §11; newer docs say 120 per endpoint — 60 is right under both). Every request
this adapter sends, retries included, draws on a `RequestBudget` of `requests_per_minute`
in any 60 s, shared by every Supabase target of the process with the same token
(adapters/ratelimit.py). A 429 that still comes (another process, same user) blocks the
budget for `X-RateLimit-Reset` seconds (Supabase sends no Retry-After) and is retried after
it. Costs: observe 1 request (3 the first time a version is seen), rollback 2–4.

Errors come through `VendorHttp` (`{"message": …}` bodies): 401/403 AuthFailed, 404 (no such
function) Permanent, 429 RateLimited, 5xx Transient. Timestamps (`updated_at`) are epoch ms.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result
from adapters.credentials import secret
from adapters.errors import Permanent, Transient
from adapters.http import RetryPolicy
from adapters.ratelimit import BudgetedHttp, RequestBudget, shared_budget
from policies.operations import Op, Operation

if TYPE_CHECKING:  # the registry imports this module, not the other way round
    from adapters.actuators.registry import BuildContext

log = logging.getLogger("tidegate.adapters.supabase_functions")

CAPABILITIES = frozenset({Op.ROLLBACK})  # no traffic split, no pause: only a redeploy
ESZIP = "application/vnd.denoland.eszip"
WINDOW = 60.0  # seconds: Supabase counts requests per minute


class SupabaseFunctionsSettings(BaseModel):
    """A Supabase Edge Function target's settings in rollout.yaml; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project_ref: str = Field(pattern=r"^[a-z]{20}$")  # the spec: exactly 20 lowercase letters
    function: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")  # the function's slug
    token_env: str = Field(default="SUPABASE_ACCESS_TOKEN", min_length=1)
    base_url: str = Field(default="https://api.supabase.com", pattern=r"^https?://")
    bundle_dir: str | None = None  # durable folder for saved bundles; default under the state_dir
    requests_per_minute: int = Field(default=60, ge=1, le=120)
    save_on_observe: bool = True

    def secret_variables(self) -> tuple[str, ...]:
        return (self.token_env,)


def capabilities_for(settings: SupabaseFunctionsSettings) -> frozenset[Op]:
    return CAPABILITIES


class _Function(BaseModel):
    """The Management API's Function object (FunctionSlugResponse / FunctionResponse)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    slug: str
    status: str  # ACTIVE | REMOVED | THROTTLED
    version: int
    updated_at: int | None = None  # epoch ms
    entrypoint_path: str | None = None
    import_map_path: str | None = None
    import_map: bool | None = None
    verify_jwt: bool | None = None


@dataclass(frozen=True)
class DeployMetadata:
    """What a redeploy must restore besides the bundle (the Function's fields at save time)."""

    entrypoint_path: str | None = None
    import_map_path: str | None = None
    import_map: bool | None = None
    verify_jwt: bool | None = None

    def query(self) -> dict[str, str]:
        """PATCH query parameters; booleans as the API's "true"/"false" strings, blanks left out."""
        texts = {"entrypoint_path": self.entrypoint_path, "import_map_path": self.import_map_path}
        flags = {"import_map": self.import_map, "verify_jwt": self.verify_jwt}
        return {k: v for k, v in texts.items() if v} | {
            k: str(v).lower() for k, v in flags.items() if v is not None
        }


@dataclass(frozen=True)
class SavedBundle:
    version: str  # the name it was saved under
    supabase_version: int  # the Supabase version it was downloaded from
    sha256: str
    path: Path


class BundleStore:
    """Saved bundles of one function, content-addressed, with the names and versions that carry them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._index_path = folder / "index.json"
        self._lock = threading.Lock()

    def path(self, sha: str) -> Path:
        return self.folder / "bundles" / f"{sha}.eszip"

    def keep(self, bundle: bytes, meta: DeployMetadata) -> str:
        sha = hashlib.sha256(bundle).hexdigest()
        if not self.path(sha).is_file():
            _write_atomically(self.path(sha), bundle)
        self._update(lambda index: index["bundles"].setdefault(sha, dataclasses.asdict(meta)))
        return sha

    def bundle(self, sha: str) -> tuple[bytes, DeployMetadata]:
        try:
            bundle = self.path(sha).read_bytes()
        except OSError as error:
            raise Permanent(f"saved bundle {self.path(sha)}: {error.strerror}") from None
        if hashlib.sha256(bundle).hexdigest() != sha:
            raise Permanent(f"saved bundle {self.path(sha)} is corrupt (its sha256 changed)")
        try:
            return bundle, DeployMetadata(**self._read()["bundles"].get(sha, {}))
        except TypeError:  # an index.json edited by hand
            raise Permanent(f"saved-bundle index {self._index_path}: bad metadata for {sha}") from None

    def name(self, version: str, sha: str) -> None:
        def rename(index: dict[str, Any]) -> None:
            index["names"].pop(version, None)  # re-inserted last: the newest name of a bundle wins
            index["names"][version] = sha

        self._update(rename)

    def named(self, version: str) -> str | None:
        found: str | None = self._read()["names"].get(version)
        return found

    def names_of(self, sha: str) -> list[str]:
        return [name for name, named in self._read()["names"].items() if named == sha]

    def carried_by(self, function_id: str, supabase_version: int) -> str | None:
        found: str | None = self._read()["deployed"].get(f"{function_id}:{supabase_version}")
        return found

    def record(self, function_id: str, supabase_version: int, sha: str) -> None:
        self._update(lambda index: index["deployed"].__setitem__(f"{function_id}:{supabase_version}", sha))

    def _read(self) -> dict[str, Any]:
        try:
            index: dict[str, Any] = json.loads(self._index_path.read_text())
        except FileNotFoundError:
            return {"bundles": {}, "names": {}, "deployed": {}}
        except (OSError, ValueError) as error:
            raise Permanent(f"saved-bundle index {self._index_path}: {error}") from None
        return index

    def _update(self, change: Callable[[dict[str, Any]], object]) -> None:
        with self._lock:
            index = self._read()
            change(index)
            _write_atomically(self._index_path, json.dumps(index, indent=1, sort_keys=True).encode())


class SupabaseFunction:
    """One Edge Function, implementing the Actuator Protocol; see the module docstring."""

    def __init__(
        self, name: str, settings: SupabaseFunctionsSettings, http: BudgetedHttp, store: BundleStore
    ) -> None:
        self._name = name
        self._settings = settings
        self.http = http  # public so tests can read `calls` and the budget
        self.store = store
        self._path = f"/v1/projects/{settings.project_ref}/functions/{quote(settings.function, safe='')}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return CAPABILITIES

    def observe(self) -> Observed:
        function = self._function()
        sha = self._content(function, save=self._settings.save_on_observe)
        names = self.store.names_of(sha) if sha else []
        version = names[-1] if names else str(function.version)
        return Observed(version=version, detail=_describe(function, sha))

    def save_current(self, version: str) -> SavedBundle:
        """Keep the deployed bundle under `version` (run it before deploying the next release)."""
        function = self._function()
        sha = self._content(function, save=True)
        assert sha is not None  # save=True downloads what is not saved yet
        self.store.name(version, sha)
        log.info("supabase %s: bundle of version %s saved as %s", self._name, function.version, version)
        return SavedBundle(version, function.version, sha, self.store.path(sha))

    def apply(self, operation: Operation, key: str) -> Result:
        if operation.target != self._name:
            return Refused(f"operation for target {operation.target!r} sent to {self._name!r}")
        if operation.op not in CAPABILITIES:
            return Refused(f"supabase-functions target {self._name!r} cannot {operation.op.value}")
        if not operation.version:
            return Refused("rollback needs the version to roll back to")
        return self._rollback(operation.version, key)

    def _rollback(self, version: str, key: str) -> Result:
        wanted = self.store.named(version)
        function = None
        if wanted is None and version.isdigit():  # a Supabase version observe() saw and saved
            function = self._function()
            wanted = self.store.carried_by(function.id, int(version))
        if wanted is None:
            return Refused(
                f"{self._label()}: no saved bundle for version {version!r} in {self.store.folder}"
                " (Supabase keeps no history: save_current() it before deploying the next release)"
            )
        function = function or self._function()
        if self._content(function, save=True) == wanted:
            return AlreadyDone(
                f"{self._label()} already runs the bundle of {version} ({_describe(function, wanted)})"
            )
        deployed = self._redeploy(wanted)
        self.store.record(deployed.id, deployed.version, wanted)
        log.info(
            "supabase %s: redeployed %s as version %s (key %s)", self._name, version, deployed.version, key
        )
        return Applied(f"redeployed the saved bundle of {version} as Supabase version {deployed.version}")

    def _content(self, function: _Function, *, save: bool) -> str | None:
        """The sha256 of the deployed bundle: recorded, or (save) downloaded, kept and recorded."""
        known = self.store.carried_by(function.id, function.version)
        if known is not None or not save:
            return known
        bundle = self.http.request("GET", self._path + "/body").content
        meta = DeployMetadata(
            function.entrypoint_path, function.import_map_path, function.import_map, function.verify_jwt
        )
        sha = self.store.keep(bundle, meta)
        after = self._function()
        if (after.id, after.version) != (function.id, function.version):  # a deploy raced the download
            raise Transient(f"{self._label()} was redeployed while its bundle was downloaded; try again")
        self.store.record(function.id, function.version, sha)
        return sha

    def _redeploy(self, sha: str) -> _Function:
        bundle, meta = self.store.bundle(sha)
        response = self.http.request(
            "PATCH",
            self._path,
            content=bundle,
            params=meta.query(),
            headers={"Content-Type": ESZIP},
            ok=(200,),
        )
        return self._parse(response.json(), "PATCH")

    def _function(self) -> _Function:
        return self._parse(self.http.request("GET", self._path, ok=(200,)).json(), "GET")

    def _parse(self, body: object, method: str) -> _Function:
        try:
            return _Function.model_validate(body)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise Permanent(
                f"{self._label()}: unexpected answer to {method} {self._path}: {where}: {problem['msg']}"
            ) from None

    def _label(self) -> str:
        return f"supabase function {self._settings.function!r} of {self._settings.project_ref}"


def _describe(function: _Function, sha: str | None) -> str:
    updated = ""
    if function.updated_at is not None:  # epoch MILLISECONDS
        moment = datetime.datetime.fromtimestamp(function.updated_at / 1000, tz=datetime.UTC)
        updated = f", updated {moment:%Y-%m-%dT%H:%M:%SZ}"
    bundle = f"bundle sha256 {sha[:12]}" if sha else "bundle not saved"
    return f"Supabase version {function.version} ({function.status}{updated}), {bundle}"


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise Permanent(f"cannot write {path}: {error.strerror}") from None


def build(
    name: str,
    settings: SupabaseFunctionsSettings,
    context: BuildContext,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    budget: RequestBudget | None = None,
) -> SupabaseFunction:
    """The actuator for target `name`: the token from `context.env`, the shared HTTP client."""
    token = secret(context.env, settings.token_env, name)
    http = BudgetedHttp(
        context.client(),
        vendor=f"supabase {name!r}",
        base_url=settings.base_url,
        headers={"Authorization": f"Bearer {token}"},
        secrets=[token],
        # A block lasts a minute: a retry must be able to wait that long (and no longer).
        retry=RetryPolicy(longest_wait=2 * WINDOW),
        sleep=sleep,
        clock=clock,
        budget=budget or shared_budget(settings.base_url, token, settings.requests_per_minute, WINDOW),
    )
    root = Path(settings.bundle_dir) if settings.bundle_dir else context.state_dir / "supabase-functions"
    return SupabaseFunction(
        name, settings, http, BundleStore(root / settings.project_ref / settings.function)
    )
