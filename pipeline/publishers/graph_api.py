"""A small Graph API client for Instagram publishing, and the publishing-quota helpers.

Reads and container creation may be repeated (bounded); ``media_publish`` never is: callers decide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from pipeline.errors import PermanentPublishError, PublishError, TransientPublishError
from pipeline.publishers.graph_errors import (
    AnswerLost,
    GraphError,
    GraphThrottled,
    classify_graph_error,
    retry_after_from_headers,
    scrub,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "GraphApi",
    "PollPolicy",
    "PublishingQuota",
    "RefreshedToken",
    "content_publishing_limit",
    "quota_frees_at",
    "refresh_long_lived_token",
]

DEFAULT_BASE_URL = "https://graph.instagram.com"
DEFAULT_API_VERSION = "v24.0"
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class PollPolicy:
    """How long and how often to wait on Instagram; every loop it drives is bounded.

    The default waits about two minutes for a container (Meta: images are usually ready at
    once, video within five minutes), inside the default five-minute task lease.
    """

    first_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    status_checks: int = 8  # status reads while a container is IN_PROGRESS
    verify_checks: int = 4  # status reads after a media_publish whose answer was lost
    request_tries: int = 3  # tries of one repeatable request (reads, container creation)
    publish_tries: int = 3  # media_publish calls for one container, each after asking it
    containers: int = 2  # containers one publish may make (one replaces an EXPIRED/ERROR one)
    sleep: Callable[[float], None] = time.sleep

    def delays(self, count: int) -> Iterator[float]:
        """``count`` growing pauses, each capped at ``max_delay``."""
        for attempt in range(max(count, 0)):
            yield min(self.first_delay * self.factor**attempt, self.max_delay)


class GraphApi:
    """One Instagram user's Graph API: the token joins every request and stays out of text."""

    def __init__(
        self,
        *,
        client: httpx.Client,
        base_url: str,
        api_version: str,
        access_token: str,
        policy: PollPolicy,
    ) -> None:
        self._client = client
        self._root = "/".join(p for p in (base_url.rstrip("/"), api_version.strip("/")) if p)
        self._token = access_token
        self.policy = policy

    def get(self, path: str, *, action: str, **params: str | int) -> dict[str, Any]:
        return self._repeat(lambda: self._send("GET", path, action, params))

    def post(
        self, path: str, fields: Mapping[str, str], *, action: str, repeatable: bool
    ) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            return self._send("POST", path, action, fields)

        return self._repeat(call) if repeatable else call()

    def scrub(self, text: str) -> str:
        return scrub(text, (self._token,))

    def _repeat(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        pauses = self.policy.delays(self.policy.request_tries - 1)
        while True:
            try:
                return call()
            except GraphThrottled:
                raise  # more calls now only extend the rate limit
            except TransientPublishError:
                pause = next(pauses, None)
                if pause is None:
                    raise
                self.policy.sleep(pause)

    def _send(
        self, method: str, path: str, action: str, fields: Mapping[str, str | int]
    ) -> dict[str, Any]:
        url = f"{self._root}/{path.lstrip('/')}"
        payload = {**fields, "access_token": self._token}
        try:
            if method == "GET":
                response = self._client.get(url, params=payload)
            else:  # in the body, so the token stays out of URLs that proxies and httpx log
                response = self._client.post(url, data=payload)
        except _NOT_SENT as exc:
            raise TransientPublishError(
                f"Instagram {action}: could not reach {httpx.URL(url).host} "
                f"({type(exc).__name__}); will retry"
            ) from None
        except httpx.TransportError as exc:
            # `from None`: the httpx exception holds the request, and the request the token.
            raise AnswerLost(
                f"Instagram {action}: no answer ({type(exc).__name__}: {self.scrub(str(exc))})"
            ) from None
        return self._read(response, action)

    def _read(self, response: httpx.Response, action: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict) and "error" not in body:
            return body
        error = GraphError.from_body(body)
        if error is None:
            raise _unexpected_answer(response, action)
        exc = classify_graph_error(
            error,
            action=action,
            http_status=response.status_code,
            retry_after=retry_after_from_headers(response.headers),
            secrets=(self._token,),
        )
        if response.status_code >= 500 and type(exc) is TransientPublishError:
            # A server error says nothing about whether the request took effect.
            raise AnswerLost(str(exc))
        raise exc


def _unexpected_answer(response: httpx.Response, action: str) -> PublishError:
    status = response.status_code
    what = f"Instagram {action}: HTTP {status} without a Graph API answer"
    if status >= 500 or status < 300:
        return AnswerLost(what)
    if status == 429:  # a rate limit in front of the API (a proxy, Meta's edge)
        return GraphThrottled(f"{what}; rate limited", retry_after_from_headers(response.headers))
    if status == 408:
        return TransientPublishError(f"{what}; will retry")
    return PermanentPublishError(f"{what}; check the target's base_url and api_version")


@dataclass(frozen=True)
class PublishingQuota:
    """``content_publishing_limit``: posts published in the rolling window, and the cap."""

    usage: int
    total: int
    duration_seconds: int

    @property
    def remaining(self) -> int:
        return max(self.total - self.usage, 0)


def content_publishing_limit(
    api: GraphApi, ig_user_id: str, *, since: datetime | None = None
) -> PublishingQuota:
    """Read the account's publishing quota; Meta's docs disagree on the cap, so never assume it."""
    params: dict[str, str | int] = {"fields": "quota_usage,config"}
    if since is not None:
        params["since"] = int(since.timestamp())
    body = api.get(f"{ig_user_id}/content_publishing_limit", action="quota read", **params)
    try:
        entry = body["data"][0]
        config = entry["config"]
        return PublishingQuota(
            usage=int(entry.get("quota_usage", 0)),
            total=int(config["quota_total"]),
            duration_seconds=int(config["quota_duration"]),
        )
    except (KeyError, IndexError, TypeError, ValueError):
        raise TransientPublishError(
            f"Instagram quota read: unexpected answer {api.scrub(str(body))[:200]}"
        ) from None


def quota_frees_at(api: GraphApi, ig_user_id: str, *, now: datetime, probes: int = 10) -> datetime:
    """When the next post fits in the rolling window (``now`` if it already does).

    The window frees when its oldest post ages out. ``since`` counts posts after a moment, so a
    bisection over the window finds that post within duration / 2**probes; rounding up keeps
    the answer on the late, safe side.
    """
    quota = content_publishing_limit(api, ig_user_id)
    if quota.remaining > 0:
        return now
    window = timedelta(seconds=min(quota.duration_seconds, 86_400) - 1)  # since: ≤ 24 h old
    early, late = now - window, now
    for _ in range(probes):
        middle = early + (late - early) / 2
        if content_publishing_limit(api, ig_user_id, since=middle).usage >= quota.total:
            early = middle  # every counted post is younger than `middle`
        else:
            late = middle
    return late + timedelta(seconds=quota.duration_seconds)


@dataclass(frozen=True)
class RefreshedToken:
    access_token: str
    expires_at: datetime


def refresh_long_lived_token(
    *, client: httpx.Client, base_url: str, access_token: str, now: datetime
) -> RefreshedToken:
    """Swap a long-lived Instagram-login token (older than 24 h) for a fresh 60-day one."""
    policy = PollPolicy(request_tries=1)
    api = GraphApi(
        client=client, base_url=base_url, api_version="", access_token=access_token, policy=policy
    )
    body = api.get("refresh_access_token", action="token refresh", grant_type="ig_refresh_token")
    try:
        token, expires_in = str(body["access_token"]), int(body["expires_in"])
    except (KeyError, TypeError, ValueError):
        raise TransientPublishError("Instagram token refresh: the answer had no token") from None
    return RefreshedToken(token, now + timedelta(seconds=expires_in))
