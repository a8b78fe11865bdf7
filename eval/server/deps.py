"""FastAPI dependencies: the server state, the participant behind a token, the admin."""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import HTTPException, Path, Request

from eval.server.database import Participant, Team
from eval.server.state import ServerState
from eval.server.tokens import find_participant, token_hash

# A submission's number in a URL: within the id column's 32-bit integers (a longer one once
# reached SQLite and ended in a 500).
SubmissionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a submission's number")]
QUERY_TOKEN_NAMES = {"token", "access_token", "api_key", "apikey", "key", "auth"}


@dataclass
class Caller:
    """The participant a request's token belongs to, and their team."""
    participant: Participant
    team: Team


def state(request: Request) -> ServerState:
    """The running server's state (competition, database, grader): a dependency."""
    return request.app.state.kit


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer``; never one from the query string."""
    if QUERY_TOKEN_NAMES & {name.lower() for name in request.query_params}:
        raise HTTPException(400, "tokens in the query string are refused (they end up in logs); "
                                 "send the header Authorization: Bearer <token>")
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "the Authorization header must be 'Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        return token.strip()
    return None


def participant(request: Request) -> Caller:
    """The participant holding the request's token; 401 for a missing, unknown or revoked one."""
    token = bearer_token(request)
    if not token:
        raise HTTPException(401, "no token: send the header Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    found = find_participant(state(request).db, token)
    if found is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    if found[0].revoked:
        raise HTTPException(401, "this token was revoked by the organiser",
                            headers={"WWW-Authenticate": "Bearer"})
    return Caller(*found)


def is_admin(request: Request, token: str | None) -> bool:
    """Whether ``token`` is the organiser's admin token (compared in constant time)."""
    return bool(token) and hmac.compare_digest(token_hash(token),
                                               token_hash(state(request).admin_token()))


def admin(request: Request) -> None:
    """Only the organiser's admin token passes."""
    token = bearer_token(request)
    if not token:
        raise HTTPException(401, "no token: send the header Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    if not is_admin(request, token):
        raise HTTPException(403, "this needs the organiser's admin token")
