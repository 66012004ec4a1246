"""Target kinds: the one place a rollout.yaml `kind:` becomes an actuator.

`ACTUATORS` is an explicit dict, no import-time discovery. Each kind names its settings model
(pydantic, unknown fields forbidden), how to build the actuator and what it can do. An unknown
kind or bad settings is a `ConfigError` naming the kind, the field and what was expected;
there is no fallback kind. Adding a target kind is one module, one line here, and its test
module `tests/test_<kind>_actuator.py` (a test fails without it).

`capabilities_of` answers from the settings alone — no file, no network — so the planner and
`tidegate plan` can map decisions onto operations without side effects.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from adapters.actuators import (
    app_store,
    appconfig,
    argo_rollouts,
    argocd,
    command,
    google_play,
    launchdarkly,
    supabase_functions,
    unleash,
    vercel,
    webhook,
)
from adapters.actuators.base import Actuator
from adapters.actuators.sandbox import STATE_FILE, Sandbox, SandboxSettings, capabilities_for
from adapters.errors import ConfigError
from policies.operations import Op

SettingsT = TypeVar("SettingsT", bound=BaseModel)


@dataclass(frozen=True)
class BuildContext:
    """What the composition root hands every actuator it builds (STYLE.md §4: injected)."""

    state_dir: Path  # where local kinds (the sandbox) keep state
    env: Mapping[str, str] = field(default_factory=dict)  # secrets are read from here, by name
    http: httpx.Client | None = None  # one shared client; adapters wrap it in adapters.http.VendorHttp

    def client(self) -> httpx.Client:
        return self.http if self.http is not None else httpx.Client()


class TargetKind(Protocol):
    def capabilities(self, settings: Mapping[str, object], where: str) -> frozenset[Op]: ...

    def build(
        self, name: str, settings: Mapping[str, object], where: str, context: BuildContext
    ) -> Actuator: ...


@dataclass(frozen=True)
class Kind(Generic[SettingsT]):
    """A target kind: its settings model, its constructor and its capabilities."""

    settings: type[SettingsT]
    construct: Callable[[str, SettingsT, BuildContext], Actuator]
    capabilities_for: Callable[[SettingsT], frozenset[Op]]

    def capabilities(self, settings: Mapping[str, object], where: str) -> frozenset[Op]:
        return self.capabilities_for(self._validate(settings, where))

    def build(self, name: str, settings: Mapping[str, object], where: str, context: BuildContext) -> Actuator:
        return self.construct(name, self._validate(settings, where), context)

    def _validate(self, settings: Mapping[str, object], where: str) -> SettingsT:
        try:
            return self.settings.model_validate(settings)
        except ValidationError as error:
            problems = error.errors()
            message = "; ".join(_explain(problem, self.settings) for problem in problems)
            raise ConfigError(f"{where}: {message}", path=tuple(problems[0]["loc"])) from None


def _sandbox(name: str, settings: SandboxSettings, context: BuildContext) -> Actuator:
    return Sandbox(name, settings, context.state_dir / STATE_FILE)


ACTUATORS: dict[str, TargetKind] = {
    "sandbox": Kind(SandboxSettings, _sandbox, capabilities_for),
    "launchdarkly": Kind(
        launchdarkly.LaunchDarklySettings, launchdarkly.build, launchdarkly.capabilities_for
    ),
    "unleash": Kind(unleash.UnleashSettings, unleash.build, unleash.capabilities_for),
    "webhook": Kind(webhook.WebhookSettings, webhook.build, webhook.capabilities_for),
    "command": Kind(command.CommandSettings, command.build, command.capabilities_for),
    "vercel": Kind(vercel.VercelSettings, vercel.build, vercel.capabilities_for),
    "supabase-functions": Kind(
        supabase_functions.SupabaseFunctionsSettings,
        supabase_functions.build,
        supabase_functions.capabilities_for,
    ),
    "app-store": Kind(app_store.AppStoreSettings, app_store.build, app_store.capabilities_for),
    "argocd": Kind(argocd.ArgoCDSettings, argocd.build, argocd.capabilities_for),
    "argo-rollouts": Kind(
        argo_rollouts.ArgoRolloutsSettings, argo_rollouts.build, argo_rollouts.capabilities_for
    ),
    "google-play": Kind(google_play.GooglePlaySettings, google_play.build, google_play.capabilities_for),
    "appconfig": Kind(appconfig.AppConfigSettings, appconfig.build, appconfig.capabilities_for),
}


def build_actuator(
    kind: str,
    name: str,
    settings: Mapping[str, object],
    *,
    state_dir: Path,
    env: Mapping[str, str] | None = None,
    http: httpx.Client | None = None,
) -> Actuator:
    """The actuator for target `name`; secrets come from `env` (default: the process's)."""
    context = BuildContext(state_dir, os.environ if env is None else env, http)
    return _kind(kind).build(name, settings, f"target {name!r} ({kind})", context)


def capabilities_of(kind: str, settings: Mapping[str, object]) -> frozenset[Op]:
    """What a target of this kind and settings supports, without touching any state."""
    return _kind(kind).capabilities(settings, f"{kind} settings")


def _kind(kind: str) -> TargetKind:
    try:
        return ACTUATORS[kind]
    except KeyError:
        known = ", ".join(sorted(ACTUATORS))
        raise ConfigError(f"unknown target kind {kind!r} (known: {known})") from None


def _explain(problem: ErrorDetails, model: type[BaseModel]) -> str:
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"])
    field = field.removeprefix(".") or "settings"
    if problem["type"] == "extra_forbidden":
        known = sorted(model.model_fields)
        close = difflib.get_close_matches(str(problem["loc"][-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown setting {field!r} ({hint}known: {', '.join(known)})"
    if problem["type"] in ("model_type", "dict_type"):
        return f"{field}: expected a mapping of setting names to values, got {problem['input']!r}"
    if problem["type"] == "string_type" and isinstance(problem["input"], int | float):
        return f"{field}: expected a string, got {problem['input']!r} (quote it in YAML)"
    expected = problem["msg"].removeprefix("Input should be ")
    if expected != problem["msg"]:
        return f"{field}: expected {expected}, got {problem['input']!r}"
    return f"{field}: {problem['msg'][:1].lower()}{problem['msg'][1:]} (got {problem['input']!r})"
