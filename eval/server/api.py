"""The JSON API: rules, leaderboard, submissions, final selections, admin."""
from __future__ import annotations

import asyncio
import re
import unicodedata

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from eval.rules import MAX_MESSAGE, iso_utc, next_reset, utc_now
from eval.server import board
from eval.server.database import Submission, Team
from eval.server.deps import Caller, SubmissionId, admin, participant, state
from eval.server.grader import GradingFailed, QueueFull
from eval.server.schemas import (AllSubmissions, CompetitionStatus, FinalChoice, Health,
                                 Leaderboard, Me, NewParticipant, ParticipantAdded, Participants,
                                 Problem, RequestProblem, Rejected, Revoked, Scored,
                                 SubmissionDetail, SubmissionView, TeamSubmissions, answers)
from eval.server.state import DiskFull, ServerState, store_upload
from eval.server.submissions import (LimitReached, SelectionRefused, full_view, public_view,
                                     record, remaining, reserve, select_final, team_submissions)
from eval.server.tokens import (ParticipantExists, add_participant, list_participants,
                               revoke_participant)
from kit.errors import KitError

router = APIRouter(prefix="/api", responses=answers(413, 503))   # every body; the database
TOKEN_ERRORS = (400, 401)                # a token in the query string; a missing or bad one


def clean_filename(name: str | None) -> str:
    """The upload's base name without control characters or path parts, at most 255 long."""
    name = re.split(r"[\\/]", name or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:255] or "submission.csv"


def competition_status(server: ServerState) -> dict:
    """The competition's name, rules, whether it is closed, and the time left."""
    rules = server.rules()
    deadline = rules.deadline_at()
    return {"competition": server.competition.name, "rules": rules.as_dict(),
            "closed": server.closed(rules), "now": iso_utc(utc_now()),
            "seconds_left": max(0, int((deadline - utc_now()).total_seconds()))
            if deadline else None}


@router.get("/health", response_model=Health)
def health() -> dict:
    """Whether the server answers (no token needed)."""
    return {"ok": True}


@router.get("/rules", response_model=CompetitionStatus, responses=answers(*TOKEN_ERRORS))
def get_rules(caller: Caller = Depends(participant),
              server: ServerState = Depends(state)) -> dict:
    """The competition's rules, whether it is closed, and the time left."""
    return competition_status(server)


async def leaderboard_data(server: ServerState) -> dict:
    """The public board (always) and, once closed, the private one."""
    rules = server.rules()
    closed = server.closed(rules)
    references = await server.references()
    public, private = server.boards(rules, closed)
    await server.mark_ties(public, rules.metric)
    data = {**competition_status(server), "metric": rules.metric,
            "ranked_by": "private" if closed else "public",
            "public": board.with_references(public, references.get("public", {}), rules.metric)}
    if closed:
        data["private"] = board.with_references(private, references.get("private", {}),
                                                rules.metric)
    return data


@router.get("/leaderboard", response_model=Leaderboard, response_model_exclude_unset=True)
async def get_leaderboard(server: ServerState = Depends(state)) -> dict:
    return await leaderboard_data(server)


@router.get("/me", response_model=Me, responses=answers(*TOKEN_ERRORS))
def me(caller: Caller = Depends(participant), server: ServerState = Depends(state)) -> dict:
    """Who the token belongs to, their team, and what the team has left today."""
    return {"participant": caller.participant.name, "team": caller.team.name,
            **remaining(server.db, caller.team.id, server.rules()),
            **competition_status(server)}


PENDING_WAIT = 120.0     # seconds a request waits for the team's files being scored


async def reserve_slot(server: ServerState, caller: Caller, rules, sha256: str, filename: str,
                       message: str) -> int:
    """A slot under the daily limit; 429 past it. While only files still being scored fill the
    limit, wait for them: one that turns out invalid frees its slot, so the limit stays exact."""
    waited = 0.0
    while True:
        try:
            return reserve(server.db, caller.team.id, caller.participant.id, rules, sha256,
                           filename, message)
        except LimitReached as error:
            if not error.waiting or waited >= PENDING_WAIT:
                seconds = int((next_reset() - utc_now()).total_seconds()) + 1
                raise HTTPException(429, str(error),
                                    headers={"Retry-After": str(seconds)}) from None
        await asyncio.sleep(0.1)
        waited += 0.1


async def accept_submission(server: ServerState, caller: Caller, upload: UploadFile,
                            message: str) -> tuple[int, dict]:
    """Store, reserve, score and record one upload; the HTTP status and the body."""
    rules = server.rules()
    if server.closed(rules):
        raise HTTPException(403, "the competition is closed: the deadline has passed or the "
                                 "organiser closed it; no more submissions are accepted")
    if len(message) > MAX_MESSAGE:
        raise HTTPException(422, f"the message is longer than {MAX_MESSAGE} characters")
    try:
        sha256, path, size = await run_in_threadpool(store_upload, upload.file, server.uploads,
                                                     rules.max_upload_bytes)
    except DiskFull:
        raise HTTPException(507, "the server's disk is full; nothing was stored or counted. "
                                 "Try again later") from None
    except ValueError:
        raise HTTPException(413, f"the file is larger than the limit of {rules.max_upload_mb:g} "
                                 "MB") from None
    filename = clean_filename(upload.filename)
    submission_id = await reserve_slot(server, caller, rules, sha256, filename, message)
    try:
        outcome = await server.grader.grade(str(path))
    except QueueFull:
        record(server.db, submission_id, caller.team.id,
               {"status": "failed", "problems": ["the scoring queue was full; not counted"]},
               rules.metric)
        raise HTTPException(503, "every scoring worker is busy and the queue is full; this "
                                 "submission was not counted, try again in a minute",
                            headers={"Retry-After": "30"}) from None
    except GradingFailed as error:
        record(server.db, submission_id, caller.team.id,
               {"status": "failed", "problems": [f"{error}; not counted"]}, rules.metric)
        raise HTTPException(503, f"{error}; this submission was not counted, try again",
                            headers={"Retry-After": "5"}) from None
    record(server.db, submission_id, caller.team.id, outcome, rules.metric)
    with server.db.reading() as session:
        row = session.get(Submission, submission_id)
    body = {**public_view(row), "metric": rules.metric,
            **remaining(server.db, caller.team.id, rules)}
    if outcome["status"] == "invalid":
        return 422, {"detail": "the file is not a valid submission", **body}
    ranks = {r["team"]: r["rank"] for r in server.boards(rules, False)[0]}
    return 201, {**body, "rank": ranks.get(caller.team.name)}


@router.post("/submissions", status_code=201, response_model=Scored,
             responses=answers(*TOKEN_ERRORS, 403, 408, 413, 429, 507,
                               invalid=Rejected | RequestProblem))
async def submit(file: UploadFile = File(...), message: str = Form(""),
                 caller: Caller = Depends(participant), server: ServerState = Depends(state)):
    status, body = await accept_submission(server, caller, file, message)
    return JSONResponse(body, status_code=status)


@router.get("/submissions", response_model=TeamSubmissions, response_model_exclude_unset=True,
            responses=answers(*TOKEN_ERRORS))
def own_submissions(caller: Caller = Depends(participant),
                    server: ServerState = Depends(state)) -> dict:
    """The team's submissions, newest first, and what it has left today."""
    closed = server.closed()
    return {"team": caller.team.name,
            "submissions": [full_view(r, closed) for r in team_submissions(server.db,
                                                                            caller.team.id)],
            **remaining(server.db, caller.team.id, server.rules())}


def own_submission(server: ServerState, caller: Caller, submission_id: int) -> Submission:
    """The team's submission ``submission_id``; 404 for another team's or none."""
    with server.db.reading() as session:
        row = session.get(Submission, submission_id)
    if row is None or row.team_id != caller.team.id:
        raise HTTPException(404, f"your team has no submission {submission_id}")
    return row


@router.get("/submissions/{submission_id}", response_model=SubmissionDetail,
            response_model_exclude_unset=True,
            responses=answers(*TOKEN_ERRORS, 404, invalid=RequestProblem))
def one_submission(submission_id: SubmissionId, caller: Caller = Depends(participant),
                   server: ServerState = Depends(state)) -> dict:
    """One of the team's submissions, with its problems or per-genre scores."""
    return full_view(own_submission(server, caller, submission_id), server.closed())


@router.put("/submissions/{submission_id}/final", response_model=SubmissionView,
            responses=answers(*TOKEN_ERRORS, 403, 404, 409, invalid=RequestProblem))
def choose_final(submission_id: SubmissionId, choice: FinalChoice,
                 caller: Caller = Depends(participant),
                 server: ServerState = Depends(state)) -> dict:
    """Select (``final: true``) or unselect a scored submission for the private board."""
    rules = server.rules()
    if server.closed(rules):
        raise HTTPException(403, "the competition is closed: final selections are frozen")
    try:
        row = select_final(server.db, submission_id, caller.team.id, choice.final, rules)
    except SelectionRefused as error:
        raise HTTPException(409, str(error)) from None
    if row is None:
        raise HTTPException(404, f"your team has no submission {submission_id}")
    return public_view(row)


admin_router = APIRouter(prefix="/api/admin", dependencies=[Depends(admin)],
                         responses=answers(*TOKEN_ERRORS, 403, 413, 503))


@admin_router.get("/submissions", response_model=AllSubmissions)
def all_submissions(server: ServerState = Depends(state)) -> dict:
    """Every team's submissions, newest first, private scores included (admin)."""
    with server.db.reading() as session:
        rows = session.execute(select(Submission, Team.name).join(Team)
                               .order_by(Submission.id.desc())).all()
    return {"submissions": [{**full_view(s, True), "team": name} for s, name in rows]}


@admin_router.get("/participants", response_model=Participants)
def participants(server: ServerState = Depends(state)) -> dict:
    """Every participant, their team and submission count (admin)."""
    return {"participants": list_participants(server.db)}


@admin_router.post("/participants", status_code=201, response_model=ParticipantAdded,
                   responses=answers(409, invalid=Problem | RequestProblem))
def new_participant(body: NewParticipant, server: ServerState = Depends(state)) -> dict:
    """Add a participant (and their team); the answer holds their token, shown once (admin)."""
    try:
        return add_participant(server.db, body.name, body.team, body.baseline)
    except ParticipantExists as error:
        raise HTTPException(409, str(error)) from None
    except KitError as error:
        raise HTTPException(422, str(error)) from None


@admin_router.post("/participants/{name}/revoke", response_model=Revoked,
                   responses=answers(404, invalid=RequestProblem))
def revoke(name: str, server: ServerState = Depends(state)) -> dict:
    """Revoke a participant's token; their submissions stay (admin)."""
    try:
        return revoke_participant(server.db, name)
    except KitError as error:
        raise HTTPException(404, str(error)) from None


@admin_router.post("/close", response_model=CompetitionStatus)
def close(server: ServerState = Depends(state)) -> dict:
    """Close the competition: the private board decides (admin)."""
    server.competition.closed_marker.write_text("closed\n")
    return competition_status(server)
