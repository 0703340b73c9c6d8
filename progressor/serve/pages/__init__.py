"""The clinician pages: server-rendered HTML under /clinic/, from the same service as the API.

A clinician (or a readonly user) logs in with a token of `progressor token create`; the
session is a signed cookie (`sessions`). The pages read the store as the API does: the review
queue is `Store.review_page`, the patients list `Store.patients`, the actions are
`Store.resume`, `override`, `acknowledge`, `discharge`, `reenroll`, `void` and `reimport`,
recorded with the token's name as who. The handout is the engine's html and pdf exporters'
(as `progressor handout` writes it). Every form carries the session's CSRF token; a post
without it, or from a readonly user, is refused with a 403 page.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from progressor.core.models import Dose, Program, StepResult
from progressor.errors import ProgramError, ProgressorError, did_you_mean
from progressor.serve.auth import PERMISSIONS
from progressor.serve.catalog import Catalog
from progressor.serve.pages.sessions import (
    COOKIE,
    LIFETIME_S,
    Session,
    csrf_ok,
    csrf_token,
    new_cookie,
    read_cookie,
    signing_key,
)
from progressor.serve.pages.views import patient_view
from progressor.serve.problems import ProblemError
from progressor.serve.settings import ServeSettings
from progressor.serve.stored import opened
from progressor.serve.tokens import TokenEntry, TokenFile
from progressor.store.clinic import PATIENT_STATUSES, PatientStatus
from progressor.store.database import Store

PREFIX = "/clinic"
router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE, MAX_PAGE_SIZE = 25, 500  # (patients a queue page shows: by default, at most)
#: Pages are for people: a service's token (a machine's) does not log in.
PAGE_ROLES = frozenset({"clinician", "readonly"})
#: The handout's formats on the pages (the exporters `progressor handout` writes with).
HANDOUT_FORMATS = ("html", "pdf")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")  # (a patient id in a download's file name)
T = TypeVar("T")
_log = logging.getLogger("progressor.serve")

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("progressor.serve.pages", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
# (a week's `end` is the first day after it: the pages show its last day, as the handout does)


class PageError(Exception):
    """Answered with an HTML page saying what went wrong (never a traceback)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class LoginNeeded(Exception):
    """Answered with a redirect to the login page, back to `after` once logged in."""

    def __init__(self, after: str) -> None:
        super().__init__(after)
        self.after = after


@dataclass(frozen=True)
class Visitor:
    entry: TokenEntry
    session: Session
    csrf: str

    @property
    def can_act(self) -> bool:
        return self.entry.role in PERMISSIONS["act"]


def install(app: FastAPI) -> None:
    """Mount the pages on `app`, with their errors answered as pages."""
    app.include_router(router)

    async def page_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        context = {"title": exc.title, "detail": exc.detail, "code": exc.status}
        return _render("error.html", None, exc.status, **context)

    async def login_needed(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginNeeded)
        return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': exc.after})}", 303)

    app.add_exception_handler(PageError, page_error)
    app.add_exception_handler(LoginNeeded, login_needed)


# -- sessions ------------------------------------------------------------------------------------


def _key(request: Request) -> bytes:
    state = request.app.state
    if getattr(state, "session_key", None) is None:
        settings: ServeSettings = state.settings
        try:
            state.session_key = signing_key(settings.tokens)
        except (OSError, ValueError) as exc:
            _log.error("cannot read or make the pages' session key: %s", exc)
            detail = "the service cannot keep sessions; its log says why"
            raise PageError(503, "Service unavailable", detail) from None
    key: bytes = state.session_key
    return key


def _find(request: Request, find: Callable[[TokenFile], TokenEntry | None]) -> TokenEntry | None:
    try:
        return find(request.app.state.tokens)
    except ProgressorError as exc:
        _log.error("%s", exc)  # (the path is the operator's business, not the visitor's)
        detail = "the service cannot read its tokens; its log says why"
        raise PageError(503, "Service unavailable", detail) from None


def visitor(request: Request) -> Visitor:
    """The logged-in visitor (a dependency); else a redirect to the login page."""
    key = _key(request)
    session = read_cookie(key, request.cookies.get(COOKIE))
    entry = None if session is None else _find(request, lambda t: t.find_hash(session.sha256))
    # (a token revoked, or given another role, since the login ends the session)
    if session is None or entry is None or entry.role not in PAGE_ROLES:
        after = request.url.path if request.method == "GET" else f"{PREFIX}/"
        raise LoginNeeded(after + (f"?{request.url.query}" if request.url.query else ""))
    request.state.token_name, request.state.token_role = entry.name, entry.role
    return Visitor(entry, session, csrf_token(key, session))


Who = Annotated[Visitor, Depends(visitor)]


async def _form(request: Request) -> dict[str, list[str]]:
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise PageError(415, "Not a form", "the pages take forms (x-www-form-urlencoded)")
    try:
        text = (await request.body()).decode("utf-8")
        return parse_qs(text, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        raise PageError(400, "Bad form", "the form could not be read (UTF-8, 100 fields)") from None


async def _posted(request: Request, who: Visitor) -> dict[str, list[str]]:
    """The form of a post, when it carries the session's CSRF token (else a 403 page)."""
    form = await _form(request)
    if not csrf_ok(_key(request), who.session, _one(form, "csrf")):
        detail = (
            "the form did not carry this session's security (CSRF) token: nothing was "
            "recorded. Open the page again and send the form from it."
        )
        raise PageError(403, "Refused", detail)
    return form


async def _acting(request: Request, who: Visitor) -> dict[str, list[str]]:
    """The form of a clinician's post: its CSRF token checked, then the role (403 pages)."""
    form = await _posted(request, who)
    if not who.can_act:
        detail = f"role {who.entry.role!r} may read these pages but not act; nothing was recorded"
        raise PageError(403, "Refused", detail)
    return form


def _one(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


@router.get("/login")
def login_page(request: Request, next: str = f"{PREFIX}/") -> Response:
    return _render("login.html", None, after=_local(next), problem="")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    token = (_one(form, "token") or "").strip()
    after = _local(_one(form, "next") or f"{PREFIX}/")
    entry = _find(request, lambda t: t.find(token)) if token else None
    if entry is None or entry.role not in PAGE_ROLES:
        problem = (
            "That token is not known: paste a token made by progressor token create."
            if entry is None
            else f"A {entry.role} token cannot log in here: use a clinician or readonly token."
        )
        return _render("login.html", None, 401, after=after, problem=problem)
    response = RedirectResponse(after, 303)
    response.set_cookie(
        COOKIE,
        new_cookie(_key(request), entry.sha256),
        max_age=LIFETIME_S,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request, who: Who) -> Response:
    await _posted(request, who)
    response = RedirectResponse(f"{PREFIX}/login", 303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


def _local(path: str) -> str:
    """Only a page of these pages to go back to after the login (no open redirect)."""
    return path if path.startswith(f"{PREFIX}/") and "//" not in path else f"{PREFIX}/"


# -- reading -------------------------------------------------------------------------------------


@contextmanager
def _store(request: Request) -> Iterator[Store]:
    """The service's store for one page; what it refuses, as a page."""
    try:
        with opened(request) as store:
            yield store
    except ProblemError as exc:
        details = exc.details
        hints = [p.suggestion for p in details.problems if p.suggestion]
        detail = details.detail + (f" ({'; '.join(hints)})" if hints else "")
        raise PageError(details.status, details.title, detail) from None


def _read(request: Request, read: Callable[[Store], T]) -> T:
    with _store(request) as store:
        return read(store)


@router.get("/")
def queue(
    request: Request,
    who: Who,
    status: str = "",
    program: str = "",
    flag: str = "",
    offset: str = "0",
    limit: str = str(PAGE_SIZE),
) -> Response:
    """The review queue: paused patients first, then flagged ones; filters and paging."""
    start, size = _count(offset, "offset", 0), min(_count(limit, "limit", 1), MAX_PAGE_SIZE)
    page = _read(
        request,
        lambda s: s.review_page(
            status=status or None,
            program=program or None,
            flag=flag.strip() or None,
            offset=start,
            limit=size,
        ),
    )
    filters = {"status": status, "program": program, "flag": flag}

    def link(at: int) -> str:
        query = {k: v for k, v in filters.items() if v}
        sized = {} if size == PAGE_SIZE else {"limit": size}
        return f"{PREFIX}/?{urlencode({**query, 'offset': at, **sized})}"

    context: dict[str, Any] = {
        "page": page,
        "filters": filters,
        "previous": link(max(start - size, 0)) if start > 0 else None,
        "following": None if page.next_offset is None else link(page.next_offset),
    }
    return _render("queue.html", who, **context)


@router.get("/patients")
def patients(
    request: Request,
    who: Who,
    q: str = "",
    status: str = "",
    program: str = "",
    offset: str = "0",
) -> Response:
    """The store's patients (`Store.patients`): search by id, filters by status and program."""
    if status and status not in PATIENT_STATUSES:
        close = did_you_mean(status, PATIENT_STATUSES)
        hint = f" ({close})" if close else ""
        known = ", ".join(PATIENT_STATUSES)
        raise PageError(422, "Bad filter", f"status {status!r} is not one of {known}{hint}")
    start, size = _count(offset, "offset", 0), 4 * PAGE_SIZE
    entries = _read(
        request, lambda s: s.patients(cast(PatientStatus, status) or None, program or None)
    )
    search = q.strip().casefold()
    found = [e for e in entries if search in e.patient.casefold()]
    filters = {"q": q, "status": status, "program": program}

    def link(at: int) -> str:
        return f"{PREFIX}/patients?{urlencode({**filters, 'offset': at})}"

    context: dict[str, Any] = {
        "entries": found[start : start + size],
        "total": len(found),
        "offset": start,
        "filters": filters,
        "statuses": PATIENT_STATUSES,
        "previous": link(max(start - size, 0)) if start else None,
        "following": link(start + size) if start + size < len(found) else None,
    }
    return _render("patients.html", who, **context)


@router.get("/patients/{patient}")
def patient(request: Request, patient: str, who: Who) -> Response:
    """A patient: chart, weeks with decisions, records, set-aside lines, actions, forms."""
    view = _read(request, lambda s: patient_view(s, patient))
    done = request.query_params.get("done", "")
    return _render("patient.html", who, view=view, done=done)


@router.get("/patients/{patient}/handout")
def handout(request: Request, patient: str, who: Who, format: str = "html") -> Response:
    """The patient's handout for their newest computed week: the HTML page to print, or
    (`format=pdf`) the PDF, made by the same exporters as `progressor handout`."""
    exporters = request.app.state.catalog.engine.registries.exporters
    if format not in HANDOUT_FORMATS or format not in exporters:
        known = ", ".join(f for f in HANDOUT_FORMATS if f in exporters)
        raise PageError(422, "Bad query", f"format {format!r}: the handout is one of {known}")
    exporter = exporters[format].component

    def newest(store: Store) -> tuple[Program, StepResult]:
        program, history = store.program_of(patient), store.prescriptions(patient)
        if not history:
            detail = f"{patient}: nothing computed yet, so no handout (progressor recompute)"
            raise PageError(404, "No handout yet", detail)
        return program, store.result_of(patient, history[-1])

    program, result = _read(request, newest)
    try:
        if not exporter.binary:
            return _page(exporter.export(program, result))
        data = exporter.export_bytes(program, result)
    except ProgressorError as exc:
        _log.error("%s: the handout could not be made: %s", patient, exc)
        raise PageError(503, "No handout", f"the handout could not be made: {exc}") from None
    name = f"handout-{_SAFE.sub('-', patient)}-week-{result.prescription.week}{exporter.suffix}"
    headers = {**_HEADERS, "Content-Disposition": f'inline; filename="{name}"'}
    return Response(data, media_type="application/pdf", headers=headers)


@router.get("/quarantine")
def quarantine(request: Request, who: Who, offset: str = "0") -> Response:
    """Every line an import set aside, with where it came from and why."""
    lines = _read(request, lambda s: s.quarantined())
    start, size = _count(offset, "offset", 0), 4 * PAGE_SIZE
    context: dict[str, Any] = {
        "done": request.query_params.get("done", ""),
        "lines": lines[start : start + size],
        "total": len(lines),
        "previous": f"{PREFIX}/quarantine?offset={max(start - size, 0)}" if start else None,
        "following": (
            f"{PREFIX}/quarantine?offset={start + size}" if start + size < len(lines) else None
        ),
    }
    return _render("quarantine.html", who, **context)


def _count(text: str, name: str, least: int) -> int:
    """A whole number of the query (an offset, a page size); else a page saying so."""
    if not text.strip().isdigit() or int(text) < least:
        raise PageError(422, "Bad query", f"{name} {text!r} is not a whole number >= {least}")
    return int(text)


# -- acting --------------------------------------------------------------------------------------


def _note(form: dict[str, list[str]]) -> str:
    note = (_one(form, "note") or "").strip()
    if not note:
        raise PageError(422, "A note is needed", "say why in the note: it is kept with the action")
    return note


def _week(form: dict[str, list[str]]) -> int | None:
    """The week the page showed (so that a recompute in between does not move the action)."""
    text = (_one(form, "week") or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise PageError(422, "Bad week", f"week {text!r} is not a week number")
    return int(text)


async def _act(request: Request, act: Callable[[Store], object], patient: str) -> Response:
    await run_in_threadpool(_read, request, act)
    return RedirectResponse(f"{PREFIX}/patients/{quote(patient, safe='')}?done=recorded", 303)


@router.post("/patients/{patient}/resume")
async def resume(request: Request, patient: str, who: Who) -> Response:
    form = await _acting(request, who)
    note, week, exercises = _note(form), _week(form), form.get("exercise", [])
    name = who.entry.name
    return await _act(
        request, lambda s: s.resume(patient, note, name, exercises=exercises, week=week), patient
    )


@router.post("/patients/{patient}/acknowledge")
async def acknowledge(request: Request, patient: str, who: Who) -> Response:
    form = await _acting(request, who)
    note, week, name = _note(form), _week(form), who.entry.name
    return await _act(request, lambda s: s.acknowledge(patient, note, name, week=week), patient)


@router.post("/patients/{patient}/override")
async def override(request: Request, patient: str, who: Who) -> Response:
    form = await _acting(request, who)
    note, week, name = _note(form), _week(form), who.entry.name
    exercise = _one(form, "exercise") or ""
    dose = _dose(form)
    catalog: Catalog = request.app.state.catalog

    def record(store: Store) -> object:
        compiled = catalog.engine.compile(store.program_of(patient))
        return store.override(patient, exercise, dose, note, name, week=week, compiled=compiled)

    return await _act(request, record, patient)


def _dose(form: dict[str, list[str]]) -> Dose:
    """The dose of the override form: its `dose.FIELD` inputs; an empty one is left out."""
    fields = {
        name.removeprefix("dose."): values[0].strip()
        for name, values in form.items()
        if name.startswith("dose.") and values and values[0].strip()
    }
    try:
        return Dose.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise PageError(422, "Not a dose", f"the dose is not valid: {problems}") from None


@router.post("/patients/{patient}/discharge")
async def discharge(request: Request, patient: str, who: Who) -> Response:
    form = await _acting(request, who)
    note, name = _note(form), who.entry.name
    return await _act(request, lambda s: s.discharge(patient, note, name), patient)


@router.post("/patients/{patient}/void")
async def void(request: Request, patient: str, who: Who) -> Response:
    form = await _acting(request, who)
    note, name, record = _note(form), who.entry.name, (_one(form, "record") or "").strip()
    return await _act(request, lambda s: s.void(patient, record, note, name), patient)


@router.post("/patients/{patient}/reenroll")
async def reenroll(request: Request, patient: str, who: Who) -> Response:
    form = await _acting(request, who)
    note, name = _note(form), who.entry.name
    program, _, version = (_one(form, "program") or "").rpartition("@")
    start = _date(_one(form, "start") or "")
    catalog: Catalog = request.app.state.catalog

    def record(store: Store) -> object:
        try:
            compiled = catalog.engine.compile(store.program(program, version))
        except ProgramError as exc:
            raise PageError(422, "Program refused", str(exc)) from None
        return store.reenroll(patient, compiled, start, note, name)

    return await _act(request, record, patient)


def _date(text: str) -> dt.date:
    """The re-enrolment's first day; none given: today (as `progressor reenroll`)."""
    if not text.strip():
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise PageError(422, "Bad date", f"start {text!r} is not a date (YYYY-MM-DD)") from None


@router.post("/quarantine/{entry}/reimport")
async def reimport(request: Request, entry: int, who: Who) -> Response:
    """Import the fixed text of a quarantined line (`Store.reimport`); kept, marked fixed."""
    form = await _acting(request, who)
    note, name = _note(form), who.entry.name
    lines = [line for line in (_one(form, "line") or "").splitlines() if line.strip()]
    if not lines:
        raise PageError(422, "No line", "paste the fixed line in the box")
    report = await run_in_threadpool(_read, request, lambda s: s.reimport(entry, lines, note, name))
    if report.quarantined or not report.added + report.duplicates:
        why = "; ".join(item.reason for item in report.quarantined) or "nothing was read"
        detail = f"the fixed line was set aside too ({why}): line {entry} still waits"
        raise PageError(422, "Not fixed", detail)
    return RedirectResponse(f"{PREFIX}/quarantine?done=fixed#line-{entry}", 303)


# -- rendering -----------------------------------------------------------------------------------


_HEADERS = {
    # (no script runs on these pages; nothing may frame them)
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}


def _render(name: str, who: Visitor | None, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(prefix=PREFIX, who=who, **context)
    return _page(html, status)


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=_HEADERS)
