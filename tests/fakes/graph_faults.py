"""The fault knobs of the fake Graph API: what the next calls answer, and how late they land.

Mixed into ``FakeGraphApi``; each knob arms a ``Fault`` that the request handler takes in order.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.fakes.graph_rules import graph_error
from tests.fakes.graph_state import Container, Fault, RecordedRequest

__all__ = ["ROUTES", "GraphFaultKnobs"]

ROUTES = ("create", "status", "publish", "quota", "media_list", "stories", "refresh")


class GraphFaultKnobs:
    """Arms faults on the fake; the fake's handler consumes them."""

    ig_user_id: str
    tokens: set[str]
    containers: dict[str, Container]
    requests: list[RecordedRequest]
    _faults: list[Fault]
    _container_outcomes: list[tuple[str, str]]
    _drops_after_publish: list[float]
    _lock: threading.Lock

    def fail_next(
        self,
        times: int = 1,
        *,
        status: int = 500,
        route: str | None = None,
        after: str | None = None,
    ) -> None:
        """The next ``times`` calls (once ``after`` was called) answer HTTP ``status``."""
        body = graph_error(2, "An unexpected error has occurred.", is_transient=True)
        self._add_fault(route, times, status=status, body=body, after=after)

    def throttle_next(
        self,
        times: int = 1,
        *,
        code: int = 4,
        route: str | None = None,
        regain_minutes: int = 5,
        after: str | None = None,
        skip: int = 0,
    ) -> None:
        """The next calls hit a rate limit (4 app, 17 user, 32 page, 613 calls); Meta's usage
        header says when access returns (``regain_minutes=0``: it does not say)."""
        body = graph_error(code, "Application request limit reached", is_transient=True)
        usage = {
            self.ig_user_id: [
                {"type": "instagram", "estimated_time_to_regain_access": regain_minutes}
            ]
        }
        headers = {"X-Business-Use-Case-Usage": json.dumps(usage)}
        self._add_fault(
            route, times, status=400, body=body, headers=headers, after=after, skip=skip
        )

    def error_next(
        self,
        route: str,
        *,
        code: int,
        subcode: int | None = None,
        message: str = "Injected error",
        is_transient: bool = False,
        status: int = 400,
        times: int = 1,
        after: str | None = None,
        skip: int = 0,
    ) -> None:
        body = graph_error(code, message, subcode=subcode, is_transient=is_transient)
        self._add_fault(route, times, status=status, body=body, after=after, skip=skip)

    def restrict_as_spam(self, times: int = 1) -> None:
        message = "We restrict certain activity to protect our community."
        self.error_next("publish", code=4, subcode=2207051, message=message, times=times)

    def slow_next(
        self,
        times: int = 1,
        *,
        seconds: float,
        route: str | None = None,
        after: str | None = None,
        skip: int = 0,
    ) -> None:
        """The next calls wait ``seconds`` before they are handled (and then take effect)."""
        self._add_fault(route, times, delay=seconds, after=after, skip=skip)

    def drop_after_publish(self, times: int = 1, *, lands_after: float = 0.0) -> None:
        """The next publishes are accepted, then the connection closes with no answer.

        ``lands_after`` seconds pass before such a publish shows: until then its container
        still reads FINISHED and the media is not listed, as when Instagram is slow to apply it.
        """
        with self._lock:
            self._drops_after_publish += [lands_after] * times

    def containers_end_in(self, status: str, *, subcode: int | None = None, times: int = 1) -> None:
        """The next created containers end processing in ERROR or EXPIRED."""
        detail = f"Error: Media upload has failed with error code {subcode}" if subcode else ""
        with self._lock:
            self._container_outcomes += [(status, detail)] * times

    def expire(self, container_id: str) -> None:
        with self._lock:
            self.containers[container_id].outcome = "EXPIRED"

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._drops_after_publish.clear()

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def _add_fault(self, route: str | None, times: int, **how: Any) -> None:
        if route is not None and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}: one of {ROUTES}")
        with self._lock:
            routes = frozenset({route}) if route else None
            # ``after`` counts only calls made once the fault is armed.
            self._faults.append(Fault(routes, times, armed_at=len(self.requests), **how))
