"""A submission's life: a slot reserved under the team's lock, scored, recorded.

Reserving first makes the daily limit exact under concurrency: the count and the insert happen
in one transaction that holds the team's lock. Pending and scored files count; invalid files
count only against their own cap; failed ones (a worker died) count against nothing."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from eval.rules import Rules, iso_utc, next_reset, utc_now
from eval.server.board import iso
from eval.server.database import Database, Submission
from eval.server.state import STALE_PENDING


class LimitReached(Exception):
    """The team used its submissions (or invalid files) of the day; ``waiting`` when only files
    still being scored fill it (they may yet turn out invalid and free their slot)."""

    def __init__(self, message: str, waiting: bool = False):
        super().__init__(message)
        self.waiting = waiting


def _today() -> tuple[datetime, str]:
    now = utc_now()
    return now.replace(tzinfo=None), now.strftime("%Y-%m-%d")


def used_today(session, team_id: int, day: str, now: datetime) -> dict[str, int]:
    """Submissions of the team today by status (stale pending rows left out)."""
    counts = dict(session.execute(
        select(Submission.status, func.count())
        .where(Submission.team_id == team_id, Submission.day == day,
               (Submission.status != "pending") | (Submission.created_at >= now - STALE_PENDING))
        .group_by(Submission.status)).all())
    return {"counted": counts.get("pending", 0) + counts.get("scored", 0),
            "scored": counts.get("scored", 0), "invalid": counts.get("invalid", 0)}


def remaining(db: Database, team_id: int, rules: Rules) -> dict:
    """Scored and invalid submissions the team has left today, and when that resets."""
    now, day = _today()
    with db.reading() as session:
        used = used_today(session, team_id, day, now)
    return {"remaining_today": max(0, rules.daily_limit - used["counted"]),
            "invalid_remaining_today": max(0, rules.invalid_daily_limit - used["invalid"]),
            "resets_at": iso_utc(next_reset())}


def reserve(db: Database, team_id: int, participant_id: int, rules: Rules, sha256: str,
            filename: str, message: str) -> int:
    """A pending row for this file; LimitReached past either daily limit."""
    now, day = _today()
    with db.write(team_id) as session:
        used = used_today(session, team_id, day, now)
        if used["counted"] >= rules.daily_limit:
            raise LimitReached(f"daily limit reached: {rules.daily_limit} submissions per team "
                               f"per UTC day; it resets at {iso_utc(next_reset())}",
                               waiting=used["scored"] < rules.daily_limit)
        if used["invalid"] >= rules.invalid_daily_limit:
            raise LimitReached(f"too many invalid files today ({rules.invalid_daily_limit}); "
                               f"validate locally with `kit submit --check`; resets at "
                               f"{iso_utc(next_reset())}")
        row = Submission(team_id=team_id, participant_id=participant_id, created_at=now, day=day,
                         status="pending", sha256=sha256, filename=filename, message=message)
        session.add(row)
        session.flush()
        return row.id


def record(db: Database, submission_id: int, team_id: int, outcome: dict, metric: str) -> None:
    """Store the grader's outcome (scored, invalid or failed) on the reserved row."""
    with db.write(team_id) as session:
        row = session.get(Submission, submission_id)
        row.status = outcome["status"]
        row.problems = outcome.get("problems")
        if outcome["status"] == "scored":
            public, private = outcome["public"], outcome.get("private") or {}
            row.kind = outcome["kind"]
            row.public, row.private = public, private
            row.public_metric = public.get(metric)
            row.private_metric = private.get(metric)
            span = public.get(f"{metric}_interval")
            row.public_low, row.public_high = span if span else (None, None)
            Database.bump_board(session)


def public_view(row: Submission) -> dict:
    """A submission as its team sees it: never a private number."""
    return {"id": row.id, "status": row.status, "created_at": iso(row.created_at),
            "filename": row.filename, "message": row.message, "kind": row.kind,
            "sha256": row.sha256, "score": row.public_metric,
            "interval": [row.public_low, row.public_high] if row.public_low is not None else None,
            "public": row.public, "problems": row.problems, "final": row.final}


def full_view(row: Submission, closed: bool) -> dict:
    """With the private score once the competition is closed."""
    view = public_view(row)
    if closed:
        view["private_score"] = row.private_metric
    return view


class SelectionRefused(Exception):
    """A final selection the rules do not allow."""


def select_final(db: Database, submission_id: int, team_id: int, final: bool,
                 rules: Rules) -> Submission | None:
    """Select or unselect a final; None when the team has no such submission."""
    with db.write(team_id) as session:
        row = session.get(Submission, submission_id)
        if row is None or row.team_id != team_id:
            return None
        if final and not row.final:
            if row.status != "scored":
                raise SelectionRefused(f"submission {submission_id} is {row.status}; only "
                                       "scored submissions can be finals")
            chosen = session.scalar(select(func.count()).where(
                Submission.team_id == team_id, Submission.final.is_(True)))
            if chosen >= rules.final_limit:
                raise SelectionRefused(f"a team selects at most {rules.final_limit} final "
                                       "submissions; unselect one first")
        row.final = final
        Database.bump_board(session)
        return row


def team_submissions(db: Database, team_id: int) -> list[Submission]:
    """The team's submissions, newest first."""
    with db.reading() as session:
        return list(session.scalars(select(Submission).where(Submission.team_id == team_id)
                                    .order_by(Submission.id.desc())))
