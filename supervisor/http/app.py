"""The FastAPI application: the status page, its JSON API, metrics and the health check.

Routes (CONTRACT.md): ``GET /`` the page, ``GET /api/status``,
``GET /api/databases/{name}/diagnostics``, ``POST /api/databases/{name}/restart`` (202),
``GET /metrics``, ``GET /healthz``; ``GET /openapi.json`` describes them. The page's
files are served from this package (no CDN: it works offline). A restart request from
another site is refused (403): browsers send ``Sec-Fetch-Site`` and ``Origin`` with a
cross-site POST, and a workstation's own page is same-origin.

Before any route runs, a request whose ``Host`` is not one of ``allowed_hosts`` is refused
(421; ``supervisor.http.hosts``: the defence against DNS rebinding), and so is a POST whose
``Origin`` names another host (403). Every answer, refusals included, carries
``SECURITY_HEADERS``: no framing by any page, a content security policy that lets the page
load only its own files, no MIME sniffing and no referrer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from config import mask_url
from supervisor.http import hosts
from supervisor.http.source import StatusSource, UnknownDatabaseError

T = TypeVar("T")

STATIC = resources.files("supervisor.http").joinpath("static")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page's own script, style sheet and API only; no inline code; never in a frame."""

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class DatabaseStatusOut(BaseModel):
    """One eligible database, as a workstation shows it."""

    name: str
    status: Literal["running", "not_available"]
    tooltip: str
    last_checkin_at: str | None = Field(description="UTC, ISO 8601, or null before any")


class DiagnosticOut(BaseModel):
    """One line of the diagnostic log."""

    logged_at: str
    level: str
    component: str
    message: str


class RestartOut(BaseModel):
    """The queued restart command."""

    name: str
    command_id: int
    coalesced: bool = Field(description="true: a restart was already waiting; no new one")


class HealthOut(BaseModel):
    """Whether the supervision tree answers."""

    status: Literal["ok", "down"]


def _cross_site(request: Request) -> str | None:
    """Return why a state-changing request looks cross-site, or None when it does not."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc.lower() != host.lower():
            return "cross-site request refused (Origin does not match this server)"
    elif origin == "null":
        return "cross-site request refused (Origin: null)"
    return None


def create_app(source: StatusSource, allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """Return the application reading from and acting through ``source``, answering
    requests whose ``Host`` is in ``allowed_hosts`` (None: ``hosts.allowed_hosts`` for a
    loopback listener, that is this machine's names and the loopback names)."""
    allowed = (
        hosts.allowed_hosts("127.0.0.1", ())
        if allowed_hosts is None
        else frozenset({*(hosts.normalise(name) for name in allowed_hosts), *hosts.LOOPBACK_NAMES})
    )
    app = FastAPI(
        title="Practice Email Service",
        version="1",
        description="Status, diagnostics and restart of the email service, per practice "
        "database. Anyone on the practice network may view and restart; no login.",
        docs_url=None,  # the interactive docs load from a CDN; the page must work offline
        redoc_url=None,
        responses={
            421: {
                "description": "the Host header is not a name of this server (http.allowed_hosts)"
            }
        },
    )

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        refused = hosts.refusal(
            request.method, request.headers.get("host"), request.headers.get("origin"), allowed
        )
        if refused is None:
            response = await call_next(request)
        else:
            status, reason = refused
            response = JSONResponse({"detail": reason}, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(STATIC.joinpath("index.html").read_text(encoding="utf-8"))

    @app.get("/api/status", response_model=list[DatabaseStatusOut])
    def api_status() -> list[DatabaseStatusOut]:
        """Each eligible database's status, tooltip and newest check-in time."""
        return [
            DatabaseStatusOut.model_validate(s.as_json())
            for s in _unavailable_is_503(source.statuses)
        ]

    @app.get(
        "/api/databases/{name:path}/diagnostics",
        response_model=list[DiagnosticOut],
        responses={404: {"description": "no such eligible database"}},
    )
    def api_diagnostics(name: str) -> list[DiagnosticOut]:
        """The diagnostic log a workstation shows on click: the newest failing check-in's."""
        try:
            rows = _unavailable_is_503(lambda: source.diagnostics(name))
        except UnknownDatabaseError:
            raise HTTPException(404, f"no eligible practice database named {name!r}") from None
        return [
            DiagnosticOut(
                logged_at=r.logged_at.isoformat() + "Z",
                level=r.level,
                component=r.component,
                message=r.message,
            )
            for r in rows
        ]

    @app.post(
        "/api/databases/{name:path}/restart",
        status_code=202,
        response_model=RestartOut,
        responses={
            403: {"description": "a cross-site request"},
            404: {"description": "no such eligible database"},
        },
    )
    async def api_restart(name: str, request: Request) -> RestartOut:
        """Queue a restart of the database's mailbox; repeated requests coalesce."""
        refused = _cross_site(request)
        if refused is not None:
            raise HTTPException(403, refused)
        client = request.client.host if request.client else "unknown"
        try:
            command_id, coalesced = await run_in_threadpool(
                _unavailable_is_503, lambda: source.request_restart(name, f"http:{client}")
            )
        except UnknownDatabaseError:
            raise HTTPException(404, f"no eligible practice database named {name!r}") from None
        return RestartOut(name=name, command_id=command_id, coalesced=coalesced)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Counters in the Prometheus text format."""
        return PlainTextResponse(
            source.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
    def healthz() -> HealthOut:
        """200 while the supervision tree answers, 503 otherwise."""
        if source.tree_up():
            return HealthOut(status="ok")
        raise HTTPException(503, "the supervision tree does not answer")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _unavailable_is_503(call: Callable[[], T]) -> T:
    """Turn a database that does not answer into 503 with one masked line."""
    try:
        return call()
    except SQLAlchemyError as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise HTTPException(503, f"a database does not answer: {mask_url(first)[:200]}") from None
