"""adapters/http.py, the one HTTP path, against a real HTTP server on loopback.

Retries (5xx, timeouts, resets, refused connections) up to the cap with jittered exponential
backoff; Retry-After in seconds or as an HTTP date and the vendors' reset headers honoured;
credentials refused escalate at once (exactly one request); conflicts are preconditions;
every other 4xx is permanent; secret values never reach an error message. Waits are recorded
by an injected `sleep`, never slept.
"""

from __future__ import annotations

import email.utils
import math
import socket
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.errors import (
    ActuatorError,
    AuthFailed,
    Permanent,
    Precondition,
    RateLimited,
    Transient,
)
from adapters.http import RetryPolicy, VendorHttp, classify_status, retry_after, vendor_message
from tests.fakes.server import FakeVendor, Reply, Request

TOKEN = "tg-secret-0123456789abcdef"
NOW = 1_790_000_000.0  # the injected clock: 2026-09-21T14:13:20Z


class Echo(FakeVendor):
    """A vendor with one resource and one endpoint that echoes the caller's credentials back
    in its error body — as some do ("invalid token 'xyz'")."""

    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r"/v1/items/(?P<item>[a-z0-9-]+)", self.get_item)
        self.route("POST", r"/v1/echo", self.echo)

    def get_item(self, request: Request) -> Reply:
        return Reply(200, {"id": request.params["item"]})

    def echo(self, request: Request) -> Reply:
        said = request.headers.get("authorization", "")
        return Reply(400, {"error": {"message": f"malformed request from {said}"}})

    def forget(self) -> None:
        """Between tests: no requests seen, no faults left over."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()


@pytest.fixture(scope="module")
def server() -> Iterator[Echo]:
    # One server for the module: stopping one waits out serve_forever's 0.5 s poll.
    with Echo() as started:
        yield started


@pytest.fixture
def fake(server: Echo) -> Echo:
    server.forget()
    return server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as shared:
        yield shared


def vendor(
    client: httpx.Client,
    base_url: str,
    waits: list[float],
    *,
    attempts: int = 4,
    timeout: float = 5.0,
    **options: object,
) -> VendorHttp:
    return VendorHttp(
        client,
        vendor="acme",
        base_url=base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        secrets=[TOKEN],
        retry=RetryPolicy(attempts=attempts, initial=0.25, maximum=8.0, longest_wait=120.0),
        sleep=waits.append,
        clock=lambda: NOW,
        timeout=httpx.Timeout(timeout),
        **options,  # type: ignore[arg-type]
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- success and retries ------------------------------------------------------------------


def test_a_good_answer_is_returned_after_one_request(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    http = vendor(client, fake.url, waits)

    response = http.request("GET", "/v1/items/web")

    assert response.json() == {"id": "web"}
    assert (http.calls, len(fake.requests), waits) == (1, 1, [])
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_fresh_headers_are_computed_again_for_every_attempt(fake: Echo, client: httpx.Client) -> None:
    """A signature over a timestamp must be new on a retry: a receiver that remembers the
    signatures it saw would reject the same one twice (adapters/sources/webhooks.ReplayGuard)."""
    waits: list[float] = []
    fake.inject(Reply(503, {"message": "try later"}), times=2)
    signed = iter(["sig-1", "sig-2", "sig-3"])

    vendor(client, fake.url, waits).request(
        "GET",
        "/v1/items/web",
        headers={"X-Fixed": "same"},
        fresh_headers=lambda: {"X-Signature": next(signed)},
    )

    assert [r.headers["x-signature"] for r in fake.requests] == ["sig-1", "sig-2", "sig-3"]
    assert {r.headers["x-fixed"] for r in fake.requests} == {"same"}
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_a_server_error_is_retried_until_the_vendor_answers(
    fake: Echo, client: httpx.Client, status: int
) -> None:
    waits: list[float] = []
    fake.inject(Reply(status, {"message": "try later"}), times=2)

    response = vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert response.status_code == 200
    assert len(fake.requests) == 3
    assert len(waits) == 2


def test_server_errors_stop_at_the_attempt_cap_with_a_transient_error(
    fake: Echo, client: httpx.Client
) -> None:
    waits: list[float] = []
    fake.inject(Reply(502, {"message": "bad gateway"}), times=10)

    with pytest.raises(Transient, match=r"acme: GET /v1/items/web → 502: bad gateway") as raised:
        vendor(client, fake.url, waits, attempts=4).request("GET", "/v1/items/web")

    assert not isinstance(raised.value, RateLimited)
    assert raised.value.retried  # the runtime must not retry it again
    assert len(fake.requests) == 4
    assert len(waits) == 3


def test_backoff_doubles_with_jitter_and_is_capped(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    fake.inject(Reply(500), times=10)

    with pytest.raises(Transient):
        vendor(client, fake.url, waits, attempts=8).request("GET", "/v1/items/web")

    ceilings = [min(8.0, 0.25 * 2**n) for n in range(7)]  # 0.25 0.5 1 2 4 8 8
    assert len(waits) == len(ceilings)
    for wait, ceiling in zip(waits, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling  # jitter: ½–1× so a fleet does not retry in step


def test_a_timeout_is_retried(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    fake.inject(Reply(200, {"late": True}, delay=3.0))  # answers after the client gave up

    response = vendor(client, fake.url, waits, timeout=1.0).request("GET", "/v1/items/web")

    assert response.json() == {"id": "web"}
    assert len(fake.requests) == 2
    assert len(waits) == 1


def test_timeouts_up_to_the_cap_are_a_transient_error_naming_the_timeout(
    fake: Echo, client: httpx.Client
) -> None:
    waits: list[float] = []
    fake.inject(Reply(200, delay=1.0), times=3)

    with pytest.raises(Transient, match=r"acme: GET /v1/items/web timed out \(ReadTimeout\)"):
        vendor(client, fake.url, waits, attempts=3, timeout=0.2).request("GET", "/v1/items/web")

    assert len(fake.requests) == 3


def test_no_attempt_starts_once_the_time_budget_is_spent(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    fake.inject(Reply(200, delay=1.0))  # the first attempt times out after 0.2 s
    retry = RetryPolicy(attempts=3, budget=0.1)
    http = VendorHttp(
        client, vendor="acme", base_url=fake.url, retry=retry, sleep=waits.append, timeout=httpx.Timeout(0.2)
    )

    with pytest.raises(Transient, match="timed out") as caught:
        http.request("GET", "/v1/items/web")

    assert (len(fake.requests), waits, caught.value.retried) == (1, [], True)


def test_quick_failures_are_retried_within_the_time_budget(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    fake.inject(Reply(503, {"message": "busy"}), times=2)
    http = VendorHttp(
        client,
        vendor="acme",
        base_url=fake.url,
        retry=RetryPolicy(attempts=3, budget=5.0),
        sleep=waits.append,
    )

    assert http.request("GET", "/v1/items/web").json() == {"id": "web"}
    assert (len(fake.requests), len(waits)) == (3, 2)


def test_a_reset_connection_is_retried(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    fake.inject(Reply(reset=True), times=2)

    response = vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert response.status_code == 200
    assert len(fake.requests) == 3


def test_a_refused_connection_is_retried_up_to_the_cap(client: httpx.Client) -> None:
    waits: list[float] = []
    http = vendor(client, f"http://127.0.0.1:{closed_port()}", waits, attempts=3)

    with pytest.raises(Transient, match=r"acme: GET /v1/items/web failed: "):
        http.request("GET", "/v1/items/web")

    assert http.calls == 3
    assert len(waits) == 2


def test_a_url_no_retry_can_fix_is_permanent_at_once(client: httpx.Client) -> None:
    waits: list[float] = []
    http = vendor(client, "ftp://127.0.0.1", waits)

    with pytest.raises(Permanent, match="bad URL"):
        http.request("GET", "/v1/items/web")

    assert (http.calls, waits) == (1, [])


# --- rate limits: the vendor says when ----------------------------------------------------


def test_retry_after_in_seconds_is_waited_exactly(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    fake.inject(Reply(429, {"message": "slow down"}, {"Retry-After": "7"}))

    response = vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert response.status_code == 200
    assert waits == [7.0]


def test_retry_after_longer_than_the_backoff_ceiling_is_still_honoured(
    fake: Echo, client: httpx.Client
) -> None:
    waits: list[float] = []
    fake.inject(Reply(429, headers={"Retry-After": "60"}))  # Supabase: "wait ≥ 60 s"

    vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert waits == [60.0]  # not cut to the backoff's ceiling: that only earns another 429


def test_retry_after_as_an_http_date_is_waited_until_then(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    when = email.utils.formatdate(NOW + 30, usegmt=True)
    fake.inject(Reply(429, headers={"Retry-After": when}))

    vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert waits == [30.0]


def test_a_503_with_retry_after_is_a_rate_limit_and_honoured(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    fake.inject(Reply(503, {"message": "maintenance"}, {"Retry-After": "12"}))

    vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert waits == [12.0]


@pytest.mark.parametrize(
    ("header", "value", "wait"),
    [
        ("X-RateLimit-Reset", str(int(NOW) + 42), 42.0),  # Vercel, GitHub: epoch seconds
        ("X-Ratelimit-Reset", str(int(NOW * 1000) + 1500), 1.5),  # LaunchDarkly: epoch milliseconds
        ("X-RateLimit-Reset", "25", 25.0),  # Supabase: seconds until the window resets
        ("RateLimit-Reset", "3", 3.0),  # the IETF draft's header
        ("X-RateLimit-Reset", str(int(NOW) - 5), 0.0),  # a reset already past: go at once
    ],
)
def test_vendor_reset_headers_are_honoured(
    fake: Echo, client: httpx.Client, header: str, value: str, wait: float
) -> None:
    waits: list[float] = []
    fake.inject(Reply(429, {"error": {"code": "rate_limited"}}, {header: value}))

    vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert waits == [pytest.approx(wait)]


def test_retry_after_wins_over_a_reset_header(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    fake.inject(Reply(429, headers={"Retry-After": "2", "X-RateLimit-Reset": str(int(NOW) + 50)}))

    vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert waits == [2.0]


def test_a_429_without_any_hint_backs_off_like_any_transient_error(fake: Echo, client: httpx.Client) -> None:
    waits: list[float] = []
    fake.inject(Reply(429, {"message": "too many"}))

    vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert len(waits) == 1
    assert 0.125 <= waits[0] <= 0.25


def test_rate_limited_to_the_cap_raises_rate_limited_with_the_vendors_wait(
    fake: Echo, client: httpx.Client
) -> None:
    waits: list[float] = []
    fake.inject(Reply(429, {"message": "slow down"}, {"Retry-After": "5"}), times=10)

    with pytest.raises(RateLimited) as raised:
        vendor(client, fake.url, waits, attempts=3).request("GET", "/v1/items/web")

    assert raised.value.retry_after == 5.0
    assert len(fake.requests) == 3
    assert waits == [5.0, 5.0]


def test_a_wait_beyond_the_longest_is_not_waited_out_but_escalated_at_once(
    fake: Echo, client: httpx.Client
) -> None:
    waits: list[float] = []
    fake.inject(Reply(429, headers={"Retry-After": "3600"}))

    with pytest.raises(RateLimited) as raised:
        vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert raised.value.retry_after == 3600.0
    assert (len(fake.requests), waits) == (1, [])


# --- errors that no retry fixes -----------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_escalate_after_exactly_one_request(
    fake: Echo, client: httpx.Client, status: int
) -> None:
    waits: list[float] = []
    # Even with a Retry-After: a revoked token is never retried.
    fake.inject(Reply(status, {"message": "token revoked"}, {"Retry-After": "1"}), times=10)

    with pytest.raises(AuthFailed, match=rf"acme: GET /v1/items/web → {status}: token revoked"):
        vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert (len(fake.requests), waits) == (1, [])


@pytest.mark.parametrize("status", [409, 412, 423])
def test_conflicts_and_failed_preconditions_are_preconditions_not_retried(
    fake: Echo, client: httpx.Client, status: int
) -> None:
    waits: list[float] = []
    fake.inject(Reply(status, {"message": "another operation is already in progress"}), times=10)

    with pytest.raises(Precondition, match="another operation is already in progress"):
        vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert (len(fake.requests), waits) == (1, [])


@pytest.mark.parametrize("status", [400, 404, 405, 410, 422])
def test_other_client_errors_are_permanent_after_one_request(
    fake: Echo, client: httpx.Client, status: int
) -> None:
    waits: list[float] = []
    fake.inject(Reply(status, {"detail": "no such thing"}), times=10)

    with pytest.raises(Permanent, match=rf"→ {status}: no such thing"):
        vendor(client, fake.url, waits).request("GET", "/v1/items/web")

    assert (len(fake.requests), waits) == (1, [])


def test_an_unknown_route_of_the_fake_is_a_permanent_404(fake: Echo, client: httpx.Client) -> None:
    with pytest.raises(Permanent, match=r"GET /v1/nothing → 404: no route for GET /v1/nothing"):
        vendor(client, fake.url, []).request("GET", "/v1/nothing")


def test_a_status_listed_as_ok_is_returned_not_raised(fake: Echo, client: httpx.Client) -> None:
    fake.inject(Reply(409, {"message": "already"}))

    response = vendor(client, fake.url, []).request("GET", "/v1/items/web", ok=(200, 409))

    assert response.status_code == 409


def test_a_classifier_overrides_the_status_rules(fake: Echo, client: httpx.Client) -> None:
    def classify(response: httpx.Response, text: str) -> ActuatorError | None:
        # Argo CD: 412 "another operation is already in progress" is worth waiting out.
        return Transient(text) if response.status_code == 412 else None

    waits: list[float] = []
    fake.inject(Reply(412, {"message": "another operation is already in progress"}))

    response = vendor(client, fake.url, waits, classify=classify).request("GET", "/v1/items/web")

    assert response.status_code == 200
    assert len(waits) == 1


# --- secrets --------------------------------------------------------------------------------


def test_a_token_echoed_in_the_vendors_error_is_redacted(fake: Echo, client: httpx.Client) -> None:
    with pytest.raises(Permanent) as raised:
        vendor(client, fake.url, []).request("POST", "/v1/echo", json_body={"a": 1})

    message = str(raised.value)
    assert message == "acme: POST /v1/echo → 400: malformed request from Bearer ***"
    assert TOKEN not in message


def test_a_token_straddling_the_message_limit_leaves_no_prefix_behind(
    fake: Echo, client: httpx.Client
) -> None:
    padding = "x" * 290  # the token starts 10 characters before the 300-character cut
    fake.inject(Reply(400, {"message": f"{padding}{TOKEN} was rejected"}))

    with pytest.raises(Permanent) as raised:
        vendor(client, fake.url, []).request("GET", "/v1/items/web")

    message = str(raised.value)
    assert TOKEN[:8] not in message
    assert f"{padding}***" in message


def test_a_token_in_the_path_or_a_plain_text_body_is_redacted(fake: Echo, client: httpx.Client) -> None:
    fake.inject(Reply(502, f"upstream refused key={TOKEN}".encode()), times=4)

    with pytest.raises(Transient) as raised:
        vendor(client, fake.url, [], attempts=2).request("GET", f"/v1/items/{TOKEN}")

    assert TOKEN not in str(raised.value)
    assert str(raised.value) == "acme: GET /v1/items/*** → 502: upstream refused key=***"


def test_a_secret_containing_another_is_redacted_whole(fake: Echo, client: httpx.Client) -> None:
    short = TOKEN[:10]
    http = VendorHttp(client, vendor="acme", base_url=fake.url, secrets=[short, TOKEN], sleep=[].append)
    fake.inject(Reply(400, {"message": f"bad {TOKEN}"}))

    with pytest.raises(Permanent) as raised:
        http.request("GET", "/v1/items/web")

    assert str(raised.value).endswith("→ 400: bad ***")


def test_an_error_carries_no_httpx_exception_as_its_cause(client: httpx.Client) -> None:
    http = vendor(client, f"http://127.0.0.1:{closed_port()}", [], attempts=1)

    with pytest.raises(Transient) as raised:
        http.request("GET", "/v1/items/web")

    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


# --- the pure parts -------------------------------------------------------------------------


def response(status: int, **headers: str) -> httpx.Response:
    # As bytes: a vendor's header may hold any Latin-1 byte, which httpx will not encode from str.
    return httpx.Response(status, headers=[(k.encode(), v.encode("latin-1")) for k, v in headers.items()])


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthFailed),
        (403, AuthFailed),
        (409, Precondition),
        (412, Precondition),
        (423, Precondition),
        (429, RateLimited),
        (408, Transient),
        (500, Transient),
        (503, Transient),
        (400, Permanent),
        (404, Permanent),
        (422, Permanent),
    ],
)
def test_each_status_falls_into_its_branch_of_the_error_tree(status: int, error: type[ActuatorError]) -> None:
    assert type(classify_status(response(status), "x", NOW)) is error


@pytest.mark.parametrize(
    "value",
    ["soon", "-1", "1e3", "²", "  ", "Wed, 99 Foo 2015 07:28:00 GMT", "nan", "inf", "9" * 400],
)
def test_a_retry_after_that_is_neither_seconds_nor_a_date_is_ignored(value: str) -> None:
    assert retry_after(response(429, **{"retry-after": value}), NOW) is None


def test_an_http_date_without_a_zone_is_utc_not_local_time() -> None:
    dated = email.utils.formatdate(NOW + 90)  # "… -0000": RFC 5322's UTC of unknown origin
    assert dated.endswith(" -0000")
    assert retry_after(response(429, **{"retry-after": dated}), NOW) == 90.0


def test_the_vendors_message_is_found_where_vendors_put_it() -> None:
    def said(body: object) -> str:
        return vendor_message(httpx.Response(400, json=body))

    assert said({"message": "a"}) == "a"
    assert said({"error": {"code": "rate_limited", "message": "b"}}) == "b"
    assert said({"errors": [{"detail": "c"}]}) == "c"
    assert said({"error_description": "d"}) == "d"
    assert said({"error": "e"}) == "e"
    assert vendor_message(httpx.Response(502, text="  upstream down \n")) == "upstream down"


header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)


@given(retry=header_text, reset=header_text)
def test_retry_after_never_raises_and_is_a_finite_wait_or_none(retry: str, reset: str) -> None:
    headers = httpx.Headers(
        [(b"retry-after", retry.encode("latin-1")), (b"x-ratelimit-reset", reset.encode("latin-1"))]
    )
    wait = retry_after(httpx.Response(429, headers=headers), NOW)
    assert wait is None or (math.isfinite(wait) and wait >= 0)


@given(seconds=st.integers(min_value=0, max_value=10**7))
def test_retry_after_seconds_are_read_as_given(seconds: int) -> None:
    assert retry_after(response(429, **{"retry-after": str(seconds)}), NOW) == seconds


@given(ahead=st.integers(min_value=-(10**6), max_value=10**7))
def test_retry_after_dates_are_the_time_until_then_and_never_negative(ahead: int) -> None:
    when = email.utils.formatdate(NOW + ahead, usegmt=True)
    assert retry_after(response(429, **{"retry-after": when}), NOW) == max(0, ahead)


@given(ahead_ms=st.integers(min_value=0, max_value=10**9))
def test_reset_epochs_in_milliseconds_are_read_as_milliseconds(ahead_ms: int) -> None:
    reset = str(int(NOW * 1000) + ahead_ms)
    wait = retry_after(response(429, **{"x-ratelimit-reset": reset}), NOW)
    assert wait == pytest.approx(ahead_ms / 1000, abs=1e-6)  # float seconds at epoch magnitude
