"""The one way a notifier talks to its URL: VendorHttp on the URL's origin, posting to its path."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx

from adapters.http import VendorHttp
from adapters.retry import RetryPolicy


def endpoint_http(
    client: httpx.Client,
    vendor: str,
    url: str,
    secrets: Sequence[str],
    *,
    retry: RetryPolicy,
    timeout: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> tuple[VendorHttp, str]:
    """(the HTTP client for `url`'s origin, the path to post to); `secrets` are scrubbed from
    every error and log line."""
    parsed = httpx.URL(url)
    http = VendorHttp(
        client,
        vendor=vendor,
        base_url=f"{parsed.scheme}://{parsed.netloc.decode('ascii')}",
        secrets=secrets,
        retry=retry,
        sleep=sleep,
        clock=clock,
        timeout=httpx.Timeout(timeout),
    )
    return http, parsed.raw_path.decode("ascii")
