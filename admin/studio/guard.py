"""What the studio refuses before any route reads a request: a body over its cap, and NUL
characters in the query or in a JSON or form body.

A body is parsed before authentication runs, so without a cap anyone could make the server
hold as much as they send; the cap is checked against ``Content-Length`` first and then
counted as the body streams in (chunked uploads have no length). NUL is refused here once, for
every field: PostgreSQL text cannot hold it (a 500 deep in a route otherwise) and no field of
ours has a use for it. Multipart bodies (imports) are not scanned: the importer reads them.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.studio.pages.render import bare_error_page
from pipeline.planning.imports import MAX_IMPORT_BYTES

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_UPLOAD_BYTES",
    "Refused",
    "RequestGuard",
    "refusal_response",
]

MAX_BODY_BYTES = 1024 * 1024  # a JSON or form body: captions are at most 2,200 characters
MAX_UPLOAD_BYTES = MAX_IMPORT_BYTES + 64 * 1024  # an import file and its multipart framing

NUL_MESSAGE = "text may not contain NUL characters (\\u0000, %00): remove them and send it again"


class Refused(HTTPException):
    """A request refused whole (413, 422): one line, in the API's or the pages' error shape."""


class RequestGuard:
    """A pure ASGI wrapper: refusals before the app are answered here; those found while the
    app reads the body are raised from ``receive`` and answered by the app's error handlers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int = MAX_BODY_BYTES,
        max_upload: int = MAX_UPLOAD_BYTES,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        cap = self.max_upload if kind == "multipart/form-data" else self.max_body
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            await _refuse(scope, receive, send, _too_large(int(length), cap))
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            await _refuse(scope, receive, send, Refused(422, NUL_MESSAGE))
            return
        nul = {"application/json": b"\\u0000", "application/x-www-form-urlencoded": b"%00"}
        await self.app(scope, _Counted(receive, cap, nul.get(kind)), send)


class _Counted:
    """``receive`` that counts the body against its cap and looks for NUL across chunks."""

    def __init__(self, receive: Receive, cap: int, nul: bytes | None) -> None:
        self.receive, self.cap, self.nul = receive, cap, nul
        self.seen = 0
        self.tail = b""  # the end of the last chunk: a NUL escape may straddle two

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] != "http.request":
            return message
        body: bytes = message.get("body", b"")
        self.seen += len(body)
        if self.seen > self.cap:
            raise _too_large(self.seen, self.cap, more=True)
        if self.nul is not None:
            if self.nul in self.tail + body:
                raise Refused(422, NUL_MESSAGE)
            self.tail = (self.tail + body)[-len(self.nul) :]
        return message


def _too_large(size: int, cap: int, *, more: bool = False) -> Refused:
    size_text = f"over {cap:,}" if more else f"{size:,}"
    return Refused(413, f"request body of {size_text} bytes is too large: send at most {cap:,}")


def refusal_response(request: Request, refused: Refused) -> Response:
    """The API's error shape, or the error page drawn without looking anybody up."""
    message = str(refused.detail)
    if request.url.path.startswith("/api/"):
        detail: object = message
        if refused.status_code == 422:
            detail = [{"loc": ["body"], "msg": message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=refused.status_code)
    return bare_error_page(request, refused.status_code, message)


async def _refuse(scope: Scope, receive: Receive, send: Send, refused: Refused) -> None:
    response = refusal_response(Request(scope, receive), refused)
    await response(scope, receive, send)
