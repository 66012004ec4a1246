"""`tidegate serve --config controller.yaml` and `tidegate tokens new|hash`."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated

import typer

from controller.service.tokens import hash_token, new_token

if TYPE_CHECKING:
    from controller.service.config import ServiceConfig
    from controller.service.supervisor import Service
    from controller.service.tokens import Tokens

# The service (its config pulls in every notifier and so httpx), asyncio and the web stack
# (fastapi, uvicorn) are imported by `serve` only: every other command, `backtest` first,
# starts faster (docs/performance.md).


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    tokens = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
    tokens.command("new")(tokens_new_command)
    tokens.command("hash")(tokens_hash_command)
    app.add_typer(tokens, name="tokens")


def serve_command(
    config: Annotated[str, typer.Option("--config", "-c", help="controller.yaml")],
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    plain_logs: Annotated[bool, typer.Option(help="Human-readable lines instead of JSON.")] = False,
) -> None:
    """Run the controller: many rollouts, the HTTP API, /metrics; replicas share PostgreSQL."""
    import asyncio

    import httpx

    from controller.notify import build_dispatcher
    from controller.service.config import load_config
    from controller.service.logs import configure
    from controller.service.supervisor import Service
    from controller.service.tokens import Tokens
    from controller.store import open_store

    settings = load_config(config)
    env = os.environ
    configure(log_level.upper(), secrets=_secrets(settings, env), json_lines=not plain_logs)
    # The connection that writes under leases: a frozen replica's open transaction is ended
    # by the server after one lease TTL, so its row locks cannot stall a takeover longer.
    store = open_store(settings.store, idle_in_transaction=settings.lease.ttl)
    reader = None
    notifier = None
    try:
        reader = open_store(settings.store)  # the API's own connection
        tokens = Tokens.load(settings.tokens, env)
        notifier = build_dispatcher(settings.notifications, env, httpx.Client(timeout=10.0))
        service = Service(settings, store, env=env, notifier=notifier, reader=reader)
        asyncio.run(_serve(service, tokens, settings))
    finally:
        if notifier is not None:
            notifier.close(timeout=5.0)  # deliver what is queued; never hang on a dead receiver
        if reader is not None:
            reader.close()
        store.close()


async def _serve(service: Service, tokens: Tokens, settings: ServiceConfig) -> None:
    import asyncio

    import uvicorn

    from controller.service.api import create_app

    class Server(uvicorn.Server):
        """uvicorn without its own signal handling: SIGTERM stops the Service first."""

        def install_signal_handlers(self) -> None:  # uvicorn < 0.29
            return

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    server = Server(
        uvicorn.Config(
            create_app(service, tokens),
            host=settings.host,
            port=settings.port,
            log_config=None,  # our JSON logging, configured above
            access_log=False,
            lifespan="off",
        )
    )

    def stop() -> None:
        service.stop()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    api = asyncio.create_task(server.serve())
    try:
        await service.run()  # returns once stopped: steps finished, leases released
    finally:
        server.should_exit = True
        await api


def _secrets(settings: ServiceConfig, env: Mapping[str, str]) -> list[str]:
    from controller.service.tokens import TOKENS_ENV
    from controller.store import DATABASE_URL_ENV

    values = [env.get(w.secret_env, "") for w in settings.webhooks]
    for notifier in settings.notifications:  # a Slack webhook URL is itself a secret
        names = [getattr(notifier, field, None) for field in ("webhook_url_env", "secret_env")]
        values += [env.get(name, "") for name in names if name]
    for item in env.get(TOKENS_ENV, "").split(","):
        values.append(item.rpartition(":")[2])
    url = env.get(DATABASE_URL_ENV, "") or (settings.store or "")
    if "@" in url and ":" in url.partition("://")[2].partition("@")[0]:
        values.append(url.partition("://")[2].partition("@")[0].partition(":")[2])
    return [v for v in values if v]


def tokens_new_command(
    name: Annotated[str, typer.Argument(help="Who the token is for: the actor in the audit log.")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
) -> None:
    """Make a token: prints the token once (give it to its owner) and its tokens.yaml entry."""
    if role not in ("viewer", "operator", "admin"):
        raise typer.BadParameter("expected viewer, operator or admin", param_hint="--role")
    token = new_token()
    print(f"token (shown once): {token}")
    print(f"tokens.yaml entry:  - {{name: {name}, role: {role}, sha256: {hash_token(token)}}}")


def tokens_hash_command(token: Annotated[str, typer.Argument(help="An existing token.")]) -> None:
    """The sha256 a tokens.yaml entry holds for `token`."""
    print(hash_token(token))
