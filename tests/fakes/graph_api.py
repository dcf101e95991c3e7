"""A fake Instagram Graph API: a real HTTP server on loopback that follows Meta's documented
publishing behaviour, with knobs to inject faults and a record of every publish.

    with FakeGraphApi(processing_seconds=0.05) as graph:
        graph.drop_after_publish()          # the next publish happens, its answer is lost
        ...                                 # point an InstagramPublisher at graph.base_url
        assert len(graph.published) == 1    # exactly once
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from models import TargetKind
from pipeline.publishers.targets import TargetIn
from tests.fakes.graph_faults import ROUTES, GraphFaultKnobs
from tests.fakes.graph_rules import (
    MAX_IMAGE_BYTES,
    GraphFault,
    check_caption,
    check_image,
    graph_error,
)
from tests.fakes.graph_state import Container, Fault, Published, RecordedRequest
from tests.fakes.loopback import LoopbackFake, LoopbackServer, RequestHandler

__all__ = ["ROUTES", "Container", "FakeGraphApi", "Published", "RecordedRequest"]


class _Drop(Exception):
    """Close the connection without an answer."""


class FakeGraphApi(GraphFaultKnobs, LoopbackFake):
    def __init__(
        self,
        *,
        api_version: str = "v24.0",
        ig_user_id: str = "17841400000000001",
        access_token: str = "IGAAfakeTOKEN0123456789secret",
        processing_seconds: float = 0.0,
        quota_total: int = 50,
        quota_duration: int = 86_400,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        download_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_version, self.ig_user_id = api_version, ig_user_id
        self.tokens = {access_token}
        self.processing_seconds = processing_seconds
        self.quota_total, self.quota_duration = quota_total, quota_duration
        self.max_image_bytes, self.download_timeout = max_image_bytes, download_timeout
        self.clock = clock
        self.containers: dict[str, Container] = {}
        self.published: list[Published] = []
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._container_outcomes: list[tuple[str, str]] = []
        self._drops_after_publish: list[float] = []  # each: seconds until the publish lands
        self._ids = itertools.count(17_900_000_000_000_001)
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def target(self, name: str, *, accept_previews: bool = True) -> TargetIn:
        """An Instagram target that publishes here (accepting previews by default: the
        workers in tests draw them)."""
        config = {
            "ig_user_id": self.ig_user_id,
            "base_url": self.base_url,
            "api_version": self.api_version,
        }
        secret = {"access_token": next(iter(self.tokens))}
        return TargetIn(name, TargetKind.INSTAGRAM, config, secret, accept_previews)

    # -- records ------------------------------------------------------------------------

    def calls(self, route: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.route == route)

    def seed_container(self, caption: str, *, published: bool) -> Container:
        """A container an earlier run made (and, when ``published``, published), as if it had
        been created through the API with one image."""
        fields = {"image_url": "https://media.example/seeded.jpg", "caption": caption}
        container = self._new_container("IMAGE", fields)
        if published:
            with self._lock:
                self._publish_locked(container, 0.0)
        return container

    def published_containers(self) -> list[str]:
        with self._lock:
            return [p.container_id for p in self.published]

    # -- the server ---------------------------------------------------------------------

    def _handle(self, handler: RequestHandler) -> None:
        url = urlsplit(handler.path)
        params = dict(parse_qsl(url.query))
        if handler.command == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            params.update(parse_qsl(handler.rfile.read(length).decode("utf-8")))
        route, args = self._route(handler.command, url.path)
        with self._lock:
            self.requests.append(RecordedRequest(handler.command, route, url.path, params))
        try:
            status, body = self._answer(route, args, params)
        except GraphFault as fault:
            status, body = fault.status, fault.body
        except _Drop:
            handler.close_connection = True
            return
        headers = body.pop("_headers", None) if isinstance(body, dict) else None
        handler.send_json(status, json.dumps(body).encode(), headers)

    def _route(self, method: str, path: str) -> tuple[str, list[str]]:
        parts = [p for p in path.split("/") if p]
        if parts == ["refresh_access_token"] and method == "GET":
            return "refresh", []
        if len(parts) == 3 and parts[0] == self.api_version:
            known = {
                ("POST", "media"): "create",
                ("GET", "media"): "media_list",
                ("GET", "stories"): "stories",
                ("POST", "media_publish"): "publish",
                ("GET", "content_publishing_limit"): "quota",
            }
            return known.get((method, parts[2]), "unknown"), parts[1:]
        if len(parts) == 2 and parts[0] == self.api_version and method == "GET":
            return "status", parts[1:]
        return "unknown", parts

    def _answer(self, route: str, args: list[str], params: dict[str, str]) -> tuple[int, Any]:
        fault = self._take_fault(route)
        if fault is not None:
            time.sleep(fault.delay)
            if fault.status:
                return fault.status, {**fault.body, "_headers": fault.headers}
        if params.get("access_token") not in self.tokens:
            raise GraphFault(
                400, graph_error(190, "Invalid OAuth access token - Cannot parse access token")
            )
        if route == "refresh":
            return 200, self._refresh(params)
        if route == "status":
            return 200, self._read_object(args[0], params)
        if route == "unknown" or args[0] != self.ig_user_id:
            raise GraphFault(400, graph_error(100, "Unsupported request: unknown path or object"))
        actions = {
            "create": self._create,
            "publish": self._publish,
            "quota": self._quota,
            "media_list": self._media_list,
            "stories": self._stories,
        }
        return 200, actions[route](params)

    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                seen = {r.route for r in self.requests[fault.armed_at :]}
                if fault.after is not None and fault.after not in seen:
                    continue
                if fault.times > 0 and (fault.routes is None or route in fault.routes):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    return fault
        return None

    # -- the endpoints ------------------------------------------------------------------

    def _create(self, params: dict[str, str]) -> dict[str, Any]:
        kind = params.get("media_type", "IMAGE").upper()
        if params.get("is_carousel_item") == "true":
            kind = "CAROUSEL_ITEM"
        if kind == "CAROUSEL":
            self._check_children(params.get("children", ""))
        elif kind in ("IMAGE", "STORIES", "CAROUSEL_ITEM"):
            if not params.get("image_url"):
                raise GraphFault(400, graph_error(100, "The parameter image_url is required"))
            check_image(
                params["image_url"],
                story=kind == "STORIES",
                max_bytes=self.max_image_bytes,
                timeout=self.download_timeout,
            )
        else:
            raise GraphFault(400, graph_error(100, f"Unsupported media_type {kind}"))
        if kind in ("IMAGE", "CAROUSEL"):
            check_caption(params.get("caption", ""))
        return {"id": self._new_container(kind, params).id}

    def _check_children(self, children: str) -> None:
        ids = [c for c in children.split(",") if c]
        with self._lock:
            items = [self.containers.get(c) for c in ids]
        if not 2 <= len(items) <= 10:
            raise GraphFault(400, graph_error(100, "A carousel takes 2 to 10 children"))
        for child in items:
            if child is None or child.kind != "CAROUSEL_ITEM" or child.status()[0] != "FINISHED":
                raise GraphFault(400, graph_error(100, "Every child must be a FINISHED item"))

    def _new_container(self, kind: str, params: dict[str, str]) -> Container:
        fields = {k: v for k, v in params.items() if k != "access_token"}
        with self._lock:
            outcome, detail = (
                self._container_outcomes.pop(0)
                if self._container_outcomes
                else (
                    "FINISHED",
                    "",
                )
            )
            ready_at = time.monotonic() + self.processing_seconds
            container = Container(str(next(self._ids)), kind, fields, ready_at, outcome, detail)
            self.containers[container.id] = container
        return container

    def _publish(self, params: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            container = self.containers.get(params.get("creation_id", ""))
            drop = bool(self._drops_after_publish)
            lands_after = self._drops_after_publish.pop(0) if drop else 0.0
            media_id = self._publish_locked(container, lands_after)
        if drop:
            raise _Drop
        return {"id": media_id}

    def _publish_locked(self, container: Container | None, lands_after: float) -> str:
        if container is None or container.kind == "CAROUSEL_ITEM":
            raise GraphFault(400, graph_error(100, "creation_id is not a publishable container"))
        if container.media_id and not container.landed():
            return container.media_id  # accepted and on its way: one container, one media
        status = container.status()[0]
        if status == "IN_PROGRESS":
            raise GraphFault(
                400,
                graph_error(
                    9007,
                    "Media ID is not available",
                    subcode=2207027,
                    user_message="The media is not ready for publishing, please wait for a moment",
                ),
            )
        if status != "FINISHED":
            raise GraphFault(400, graph_error(9007, f"The container is {status}", subcode=2207020))
        if self._usage_since(self.clock() - self.quota_duration) >= self.quota_total:
            raise GraphFault(
                400,
                graph_error(
                    9,
                    "You reached maximum number of posts that is allowed to be published by "
                    "Content Publishing API.",
                    subcode=2207042,
                ),
            )
        container.media_id = str(next(self._ids))
        container.lands_at = time.monotonic() + lands_after
        self.published.append(self._record(container, lands_after))
        return container.media_id

    def _record(self, container: Container, lands_after: float) -> Published:
        urls: tuple[str, ...] = (container.fields.get("image_url", ""),)
        if container.kind == "CAROUSEL":
            children = container.fields["children"].split(",")
            urls = tuple(self.containers[c].fields["image_url"] for c in children)
        return Published(
            media_id=str(container.media_id),
            container_id=container.id,
            kind=container.kind,
            caption=container.fields.get("caption", ""),
            image_urls=urls,
            at=self.clock() + lands_after,
            fields=dict(container.fields),
        )

    def _usage_since(self, since: float) -> int:
        return sum(1 for p in self.published if p.at > since)

    def _read_object(self, object_id: str, params: dict[str, str]) -> dict[str, Any]:
        wanted = set(params.get("fields", "id").split(",")) | {"id"}
        with self._lock:
            container = self.containers.get(object_id)
            media = next((p for p in self._landed() if p.media_id == object_id), None)
        if container is not None:
            code, detail = container.status()
            found = {"id": object_id, "status_code": code, "status": detail}
        elif media is not None:
            found = self._media_fields(media)
        else:
            raise GraphFault(
                400, graph_error(100, f"Object with ID '{object_id}' does not exist", subcode=33)
            )
        return {k: v for k, v in found.items() if k in wanted}

    def _media_fields(self, media: Published) -> dict[str, Any]:
        stamp = datetime.fromtimestamp(media.at, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
        return {
            "id": media.media_id,
            "caption": media.caption,
            "media_type": "CAROUSEL_ALBUM" if media.kind == "CAROUSEL" else "IMAGE",
            "media_product_type": "STORY" if media.kind == "STORIES" else "FEED",
            "permalink": f"https://www.instagram.com/p/FAKE{media.media_id[-6:]}/",
            "timestamp": stamp,
        }

    def _quota(self, params: dict[str, str]) -> dict[str, Any]:
        now = self.clock()
        since = float(params.get("since") or now - self.quota_duration)
        if since < now - 86_400:
            raise GraphFault(400, graph_error(100, "since must be no older than 24 hours"))
        with self._lock:
            entry: dict[str, Any] = {"quota_usage": self._usage_since(since)}
        if "config" in params.get("fields", ""):
            entry["config"] = {
                "quota_total": self.quota_total,
                "quota_duration": self.quota_duration,
            }
        return {"data": [entry]}

    def _landed(self) -> list[Published]:
        return [p for p in self.published if self.containers[p.container_id].landed()]

    def _media_list(self, params: dict[str, str], *, stories: bool = False) -> dict[str, Any]:
        """The account's newest media, newest first: /media lists feed posts, /stories stories."""
        limit = int(params.get("limit") or 25)
        with self._lock:
            shown = [p for p in self._landed() if (p.kind == "STORIES") == stories]
            newest = [self._media_fields(p) for p in reversed(shown)][:limit]
        wanted = set(params.get("fields", "id").split(",")) | {"id"}
        return {"data": [{k: v for k, v in m.items() if k in wanted} for m in newest]}

    def _stories(self, params: dict[str, str]) -> dict[str, Any]:
        return self._media_list(params, stories=True)

    def _refresh(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("grant_type") != "ig_refresh_token":
            raise GraphFault(400, graph_error(100, "grant_type must be ig_refresh_token"))
        token = f"IGAArefreshed{next(self._ids)}"
        with self._lock:
            self.tokens.add(token)
        return {"access_token": token, "token_type": "bearer", "expires_in": 5_184_000}
