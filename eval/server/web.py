"""Server-rendered pages (Jinja2, autoescaped, no external resource): the competition, the
leaderboard, login, the team's page and the organiser's admin page."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from eval.rules import RANKING_METRICS, Rules, write_rules
from eval.server.api import accept_submission, competition_status, leaderboard_data
from eval.server.database import Participant, Submission, Team
from eval.server.deps import Caller, SubmissionId, state
from eval.server.pages import competition_facts, score_chart, time_left
from eval.server.schemas import RulesForm
from eval.server.sessions import COOKIE, LIFETIME, LoginThrottle, make_cookie, read_cookie, \
    session_key
from eval.server.state import ServerState
from eval.server.submissions import (SelectionRefused, full_view, remaining, select_final,
                                     team_submissions)
from eval.server.tokens import (add_participant, find_participant, list_participants,
                                revoke_participant, token_hash)
from kit.errors import KitError

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
throttle = LoginThrottle()


def session_of(request: Request) -> dict | None:
    """The request's signed session cookie, or None when absent, forged or expired."""
    server = state(request)
    return read_cookie(session_key(server.competition.server), request.cookies.get(COOKIE))


def web_caller(request: Request) -> Caller | None:
    """The logged-in participant (None for visitors, the admin, or a revoked token)."""
    session = session_of(request)
    if not session or session["kind"] != "participant":
        return None
    server = state(request)
    with server.db.reading() as db:
        row = db.execute(select(Participant, Team).join(Team)
                         .where(Participant.id == session["id"])).first()
    if row is None or row[0].revoked or row[0].token_hash[:16] != session["token"]:
        return None
    return Caller(*row)


def check_csrf(request: Request, sent: str) -> dict:
    """The session, if the form's CSRF token matches it; 403 otherwise."""
    session = session_of(request)
    if not session or not sent or sent != session["csrf"]:
        raise HTTPException(403, "the form is stale or not from this site; reload the page")
    return session


def page(request: Request, name: str, status: int = 200, **context) -> Response:
    """Render template ``name`` with the competition's status and the session."""
    server = state(request)
    session = session_of(request)
    return templates.TemplateResponse(request, name, {
        "status": competition_status(server), "session": session,
        "csrf": session["csrf"] if session else "", **context}, status_code=status)


@router.get("/")
def home(request: Request, server: ServerState = Depends(state)):
    """The competition: its data, rules, time left and how to take part."""
    status = competition_status(server)
    return page(request, "index.html", facts=competition_facts(server.competition),
                left=time_left(status["seconds_left"]))


PAGE_ROWS = 100


@router.get("/leaderboard")
async def leaderboard(request: Request, show: str = "", server: ServerState = Depends(state)):
    """The board: its first PAGE_ROWS rows, every row with ``?show=all``."""
    data = await leaderboard_data(server)
    chart = score_chart(data.get("private") or data["public"], data["metric"])
    hidden = max(len(data["public"]), len(data.get("private", []))) - PAGE_ROWS
    if show != "all":
        data = {**data, **{part: data[part][:PAGE_ROWS] for part in ("public", "private")
                           if part in data}}
    return page(request, "leaderboard.html", board=data, chart=chart,
                hidden=hidden if show != "all" else 0)


@router.get("/login")
def login_form(request: Request):
    """The login form (a participant's or the admin token)."""
    return page(request, "login.html")


@router.post("/login")
def login(request: Request, token: str = Form(""), server: ServerState = Depends(state)):
    """Log in with a token; failed logins are limited per address."""
    address = request.client.host if request.client else "unknown"
    if throttle.blocked(address):
        return page(request, "login.html", 429,
                    error="too many failed logins from your address; wait a few minutes")
    token = token.strip()
    key = session_key(server.competition.server)
    if token and token_hash(token) == token_hash(server.admin_token()):
        cookie, target = make_cookie(key, "admin", None, token_hash(token)), "/admin"
    else:
        found = find_participant(server.db, token) if token else None
        if found is None or found[0].revoked:
            throttle.failed(address)
            return page(request, "login.html", 401, error="unknown or revoked token")
        cookie, target = make_cookie(key, "participant", found[0].id, found[0].token_hash), "/me"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=LIFETIME, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")):
    """Log out: the session cookie is deleted."""
    check_csrf(request, csrf)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def my_page(request: Request, caller: Caller, server: ServerState, status: int = 200,
            **context) -> Response:
    """The team's page: submissions, quota, upload form and final toggles."""
    rules = server.rules()
    closed = server.closed(rules)
    rows = [full_view(r, closed) for r in team_submissions(server.db, caller.team.id)]
    return page(request, "me.html", status, caller=caller, submissions=rows,
                quota=remaining(server.db, caller.team.id, rules), rules=rules,
                finals=sum(r["final"] for r in rows), **context)


@router.get("/me")
def me(request: Request, server: ServerState = Depends(state)):
    """The logged-in team's page (to the login form without a session)."""
    caller = web_caller(request)
    if caller is None:
        return RedirectResponse("/login", status_code=303)
    return my_page(request, caller, server)


@router.post("/me/submit")
async def submit(request: Request, file: UploadFile = File(...), message: str = Form(""),
                 csrf: str = Form(""), server: ServerState = Depends(state)):
    caller = web_caller(request)
    if caller is None:
        return RedirectResponse("/login", status_code=303)
    check_csrf(request, csrf)
    try:
        status, body = await accept_submission(server, caller, file, message)
    except HTTPException as error:
        return my_page(request, caller, server, error.status_code, error=error.detail)
    return my_page(request, caller, server, 201 if status == 201 else 422, result=body)


@router.post("/me/final/{submission_id}")
def final(request: Request, submission_id: SubmissionId, final: str = Form("1"),
          csrf: str = Form(""),
          server: ServerState = Depends(state)):
    """Select or unselect a final from the team's page."""
    caller = web_caller(request)
    if caller is None:
        return RedirectResponse("/login", status_code=303)
    check_csrf(request, csrf)
    rules = server.rules()
    try:
        if server.closed(rules):
            raise SelectionRefused("the competition is closed: final selections are frozen")
        if select_final(server.db, submission_id, caller.team.id, final == "1", rules) is None:
            return my_page(request, caller, server, 404,
                           error=f"your team has no submission {submission_id}")
    except SelectionRefused as error:
        return my_page(request, caller, server, 409, error=str(error))
    return RedirectResponse("/me", status_code=303)


def admin_session(request: Request, csrf: str | None = None) -> None:
    """Refuse with 403 unless the session is the admin's (and the CSRF token matches)."""
    session = check_csrf(request, csrf) if csrf is not None else session_of(request)
    if not session or session["kind"] != "admin":
        raise HTTPException(403, "this page is the organiser's: log in with the admin token")


def admin_page(request: Request, server: ServerState, status: int = 200,
               entered: dict | None = None, **context):
    """The organiser's page: participants, rules, every submission, close. The forms show what
    was ``entered`` when it was refused, else the rules in force."""
    rules = server.rules()
    with server.db.reading() as db:
        rows = db.execute(select(Submission, Team.name).join(Team)
                          .order_by(Submission.id.desc()).limit(500)).all()
    shown = {**rules.as_dict(), "deadline": rules.deadline or "",
             "max_upload_mb": f"{rules.max_upload_mb:g}", **(entered or {})}
    return page(request, "admin.html", status, participants=list_participants(server.db),
                submissions=[{**full_view(s, True), "team": name} for s, name in rows],
                rules=rules, form=shown, metrics=RANKING_METRICS, **context)


@router.get("/admin")
def admin(request: Request, server: ServerState = Depends(state)):
    """The organiser's page (to the login form without the admin session)."""
    if (session_of(request) or {}).get("kind") != "admin":
        return RedirectResponse("/login", status_code=303)
    return admin_page(request, server)


@router.post("/admin/participants")
def admin_add(request: Request, name: str = Form(""), team: str = Form(""),
              baseline: str = Form(""), csrf: str = Form(""),
              server: ServerState = Depends(state)):
    """Add a participant from the admin page; their token is shown once."""
    admin_session(request, csrf)
    try:
        added = add_participant(server.db, name.strip(), team.strip() or None, baseline == "1")
    except KitError as error:
        return admin_page(request, server, 422, {"name": name, "team": team}, error=str(error))
    return admin_page(request, server, 201, added=added)


@router.post("/admin/revoke/{name}")
def admin_revoke(request: Request, name: str, csrf: str = Form(""),
                 server: ServerState = Depends(state)):
    """Revoke a participant from the admin page."""
    admin_session(request, csrf)
    try:
        revoke_participant(server.db, name)
    except KitError as error:
        return admin_page(request, server, 404, error=str(error))
    return RedirectResponse("/admin", status_code=303)


def form_number(text: str, kind: type) -> int | float | str:
    """A form field as ``kind`` when it reads as one, else the text itself, for Rules to refuse
    with the rule's name (a browser sends whatever the field holds, an empty field included)."""
    try:
        return kind(text.strip())
    except ValueError:
        return text


@router.post("/admin/rules")
def admin_rules(request: Request, form: Annotated[RulesForm, Form()],
                server: ServerState = Depends(state)):
    """Save the rules from the admin page; invalid ones are refused with the reason."""
    admin_session(request, form.csrf)
    try:
        rules = Rules(daily_limit=form_number(form.daily_limit, int),
                      invalid_daily_limit=form_number(form.invalid_daily_limit, int),
                      final_limit=form_number(form.final_limit, int),
                      deadline=form.deadline.strip() or None, metric=form.metric,
                      max_upload_mb=form_number(form.max_upload_mb, float)
                      ).replacing(server.rules())
    except KitError as error:
        return admin_page(request, server, 422, form.model_dump(exclude={"csrf"}),
                          error=str(error))
    write_rules(server.competition.rules_path, rules)
    return RedirectResponse("/admin", status_code=303)


@router.post("/admin/close")
def admin_close(request: Request, csrf: str = Form(""), server: ServerState = Depends(state)):
    """Close the competition from the admin page."""
    admin_session(request, csrf)
    server.competition.closed_marker.write_text("closed\n")
    return RedirectResponse("/leaderboard", status_code=303)


@router.get("/admin/leaderboard.csv")
async def admin_csv(request: Request, server: ServerState = Depends(state)):
    admin_session(request)
    data = await leaderboard_data(server)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["board", "rank", "team", "score", "low", "high", "entries", "reference"])
    for part in ("private", "public"):
        for row in data.get(part, []):
            span = row.get("interval") or [None, None]
            writer.writerow([part, row["rank"], row["team"], row["score"], *span,
                             row.get("entries"), row["reference"]])
    return Response(out.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{server.competition.name}-board.csv"'})


def add_pages(app) -> None:
    """Mount the pages and their static files on ``app``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
