"""Participants, teams and tokens: 32 random bytes shown once, only their SHA-256 stored."""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from eval.rules import utc_now
from eval.server.database import Database, Participant, Submission, Team
from kit.errors import KitError
from kit.workdir import safe_name


TOKEN_PREFIX = "pgk_"    # a token never starts with '-' (`kit submit --token -x...` read an
                         # option), and a leaked one is easy to recognise in logs and scans


def new_token() -> str:
    """A new token: ``pgk_`` and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The SHA-256 of a token, the only form it is stored in."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_token(token: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(token_hash(token), stored_hash)


def secret_file(path: Path, make) -> str:
    """The secret stored at ``path``, created owner-only (0600) by ``make()`` on first use; the
    first of several server processes to create it wins."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(make() + "\n")
        except FileExistsError:
            pass
    return path.read_text().strip()


def admin_token(server_dir: Path) -> str:
    """The admin token, created on first use."""
    return secret_file(server_dir / "admin-token", new_token)


def _naive_now():
    return utc_now().replace(tzinfo=None)


class ParticipantExists(KitError):
    """The name is already a participant's."""


def add_participant(db: Database, name: str, team: str | None = None,
                    baseline: bool = False) -> dict:
    """Register ``name`` in ``team`` (default: a team of their own); the token is shown once."""
    name, team = safe_name(name), safe_name(team or name)
    token = new_token()
    try:
        with db.write() as session:
            found = session.scalar(select(Team).where(Team.name == team))
            if found is None:
                found = Team(name=team, baseline=baseline, created_at=_naive_now())
                session.add(found)
                session.flush()
            session.add(Participant(name=name, team_id=found.id, token_hash=token_hash(token),
                                    created_at=_naive_now()))
    except IntegrityError:
        raise ParticipantExists(f"participant {name!r} already exists") from None
    return {"participant": name, "team": team, "baseline": baseline, "token": token}


def revoke_participant(db: Database, name: str) -> dict:
    """Revoke ``name``'s token; KitError when there is no such participant."""
    with db.write() as session:
        found = session.scalar(select(Participant).where(Participant.name == name))
        if found is None:
            raise KitError(f"no participant {name!r}")
        found.revoked = True
    return {"participant": name, "revoked": True}


def list_participants(db: Database) -> list[dict]:
    """Every participant with their team and submission count, by team then name."""
    with db.reading() as session:
        counts = dict(session.execute(select(Submission.participant_id, func.count())
                                      .group_by(Submission.participant_id)).all())
        rows = session.execute(select(Participant, Team).join(Team)
                               .order_by(Team.name, Participant.name)).all()
        return [{"participant": p.name, "team": t.name, "baseline": t.baseline,
                 "revoked": p.revoked, "submissions": counts.get(p.id, 0),
                 "created_at": p.created_at.isoformat() + "Z"} for p, t in rows]


def find_participant(db: Database, token: str) -> tuple[Participant, Team] | None:
    """The participant holding ``token`` (revoked ones included), and their team."""
    with db.reading() as session:
        row = session.execute(select(Participant, Team).join(Team)
                              .where(Participant.token_hash == token_hash(token))).first()
    if row is None or not same_token(token, row[0].token_hash):
        return None
    return row[0], row[1]
