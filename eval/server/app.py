"""The FastAPI application and `python -m eval serve`."""
from __future__ import annotations

import asyncio
import json
import socket
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from eval.server.database import Database
from eval.server.grader import Grader
from eval.server.state import ServerState
from kit.competition import Competition
from kit.errors import KitError

MULTIPART_OVERHEAD = 64 * 1024     # headers and boundaries around the uploaded file
SMALL_BODY = 64 * 1024             # every other request
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class BodyGuard:
    """ASGI middleware: refuse bodies past the limit (413, by Content-Length or as they stream)
    and bodies that stall (408: a slow-loris upload is cut after ``timeout`` seconds idle)."""

    def __init__(self, app, limit_for, timeout_for):
        self.app, self.limit_for, self.timeout_for = app, limit_for, timeout_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _plain(send, 413, f"the request body is larger than {limit:,} bytes")
        received = 0
        timeout = self.timeout_for()

        async def guarded_receive():
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body stalled for {timeout:g} s",
                                    headers={"Connection": "close"}) from None
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, f"the request body is larger than {limit:,} bytes",
                                    headers={"Connection": "close"})
            return message

        await self.app(scope, guarded_receive, send)


SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'none'; style-src 'self'; "
                                 b"img-src 'self' data:; form-action 'self'; base-uri 'none'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """ASGI middleware: the same security headers on every response, pages and API alike."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in SECURITY_HEADERS if header[0] not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _plain(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(competition: Competition, db_url: str, workers: int = 2, queue: int = 8,
               resamples: int = 1000, body_timeout: float = 30.0) -> FastAPI:
    """The grading server of ``competition`` on the database at ``db_url``."""
    from eval.server.api import admin_router, router
    from eval.server.web import add_pages

    db = Database(db_url)
    server = ServerState(competition, db, Grader(str(competition.answers), workers, queue,
                                                 resamples), body_timeout)
    server.fail_stale_pending()
    server.admin_token()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        server.grader.close()
        db.close()

    app = FastAPI(title=f"poster-genre-kit: {competition.name}", lifespan=lifespan,
                  docs_url=None, openapi_url="/api/openapi.json", redoc_url=None)
    app.state.kit = server
    app.include_router(router)
    app.include_router(admin_router)
    add_pages(app)

    def limit_for(scope) -> int:
        if scope["method"] == "POST" and scope["path"] in ("/api/submissions", "/me/submit"):
            return server.rules().max_upload_bytes + MULTIPART_OVERHEAD
        return SMALL_BODY

    app.add_middleware(BodyGuard, limit_for=limit_for, timeout_for=lambda: server.body_timeout)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_down(request: Request, error: Exception):
        return JSONResponse({"detail": "the database is unreachable for the moment; nothing was "
                                       "changed, try again shortly"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if error.status_code == 405:       # Starlette names only the first matching route's
            methods = [method for method in HTTP_METHODS if any(
                route.matches({**request.scope, "method": method})[0] == Match.FULL
                for route in app.router.routes)]
            error.headers = {**(error.headers or {}), "Allow": ", ".join(methods)}
        if error.status_code == 404 and not any(route.matches(request.scope)[0] != Match.NONE
                                                for route in app.router.routes):
            error.detail = f"no page or API endpoint at {request.url.path} on this server"
        return await http_exception_handler(request, error)

    @app.exception_handler(RequestValidationError)
    async def unreadable_request(request: Request, error: RequestValidationError):
        return JSONResponse(request_problem(error.errors()), status_code=422)

    return app


def request_problem(errors) -> dict:
    """One sentence for every field the request got wrong, and the fields themselves (without
    the values sent, which can be large)."""
    found = [{"loc": [str(p) if not isinstance(p, int) else p for p in e["loc"]],
              "msg": e["msg"], "type": e["type"]} for e in errors]
    where = [e["loc"][0] if e["type"] == "json_invalid"      # loc ("body", character)
             else ".".join(str(p) for p in e["loc"][1:]) or e["loc"][0] for e in found]
    said = [f"not valid JSON ({e.get('ctx', {}).get('error', e['msg'])})"
            if e["type"] == "json_invalid" else e["msg"] for e in errors]
    return {"detail": "; ".join(f"{place}: {msg}" for place, msg in zip(where, said)),
            "errors": found}


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``; KitError naming why not (the port in use, a host
    that is not this machine's), before anything starts."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, protocol)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:            # socket.gaierror included
        raise KitError(f"cannot listen on {host}:{port}: {error.strerror or error} (another "
                       "server on that port? choose another --port, or a --host of this "
                       "machine)") from None
    return sock


def serve(competition: Competition, db_url: str, host: str, port: int, workers: int,
          queue: int, body_timeout: float) -> None:
    """Run the server with uvicorn until interrupted."""
    import uvicorn
    from kit.console import console
    sock = listening_socket(host, port)
    app = create_app(competition, db_url, workers, queue, body_timeout=body_timeout)
    shown = f"[{host}]" if ":" in host else host            # an IPv6 address
    console.print(f"grading server of {competition.name} on http://{shown}:{port} "
                  f"(database {app.state.kit.db.engine.url.render_as_string(hide_password=True)}"
                  f"; admin token in {competition.server / 'admin-token'})")
    config = uvicorn.Config(app, log_level="info", timeout_keep_alive=5,
                            h11_max_incomplete_event_size=64 * 1024)
    uvicorn.Server(config).run(sockets=[sock])
