"""What every request of one server process shares: the competition, database, grader, rules."""
from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from eval.rules import Rules, read_rules, utc_now
from eval.server.database import Database, Submission
from eval.server.grader import Grader
from eval.server.tokens import admin_token
from kit.competition import Competition

STALE_PENDING = timedelta(minutes=10)   # a pending row older than this lost its server
TIE_ROWS = 20                           # teams checked for a statistical tie with the leader


class DiskFull(Exception):
    """The upload could not be stored: no space left."""


@dataclass
class ServerState:
    """What every request of a running server shares: competition, database, grader."""
    competition: Competition
    db: Database
    grader: Grader
    body_timeout: float = 30.0
    _references: dict | None = field(default=None, repr=False)
    _ties: dict = field(default_factory=dict, repr=False)
    _tie_task: asyncio.Task | None = field(default=None, repr=False)
    _boards: tuple | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def uploads(self) -> Path:
        return self.competition.server / "uploads"

    def rules(self) -> Rules:
        """Read on every request, so that `python -m eval rules` applies without a restart."""
        return read_rules(self.competition.rules_path)

    def closed(self, rules: Rules | None = None) -> bool:
        rules = rules or self.rules()
        return self.competition.closed_marker.exists() or rules.past_deadline()

    def admin_token(self) -> str:
        return admin_token(self.competition.server)

    async def references(self) -> dict:
        async with self._lock:
            if self._references is None:
                self._references = await self.grader.references()
        return self._references

    def boards(self, rules: Rules, closed: bool) -> tuple[list[dict], list[dict] | None]:
        """The public board, and the private one once closed; recomputed only when the
        database's board version, the close or the ranking rules changed."""
        from eval.server.board import private_rows, public_rows
        key = (self.db.board_version(), closed, rules.metric, rules.final_limit)
        if self._boards is None or self._boards[0] != key:
            public = public_rows(self.db)
            private = private_rows(self.db, rules, public) if closed else None
            self._boards = (key, (public, private))
        return self._boards[1]

    async def mark_ties(self, rows: list[dict], metric: str) -> None:
        """Set ``tied`` on the board's top rows: not distinguishable from the leader (paired
        bootstrap on the public part). Computed in the background once per set of best
        submissions, so that reading the board never waits for the scoring queue."""
        top = rows[:TIE_ROWS]
        key = (metric, tuple(row["best"] for row in top))
        if key in self._ties:
            for row, tied in zip(top, self._ties[key]):
                row["tied"] = tied and row["rank"] != 1
        elif top and self._tie_task is None:
            self._tie_task = asyncio.create_task(self._compute_ties(key, top, metric))

    async def _compute_ties(self, key: tuple, rows: list[dict], metric: str) -> None:
        from eval.server.board import best_files
        from eval.server.grader import GradingFailed, QueueFull
        try:
            paths = [str(self.uploads / f"{sha}.csv") for sha in best_files(self.db, rows)]
            self._ties = {key: await self.grader.ties(paths, metric)}
        except QueueFull:
            pass                        # tried again on a later read
        except GradingFailed:           # not again for this board: no tie is marked
            self._ties = {key: [False] * len(rows)}
        finally:
            self._tie_task = None

    def fail_stale_pending(self) -> None:
        """Pending rows left by a server that died mid-scoring end as failed (not counted)."""
        cutoff = (utc_now() - STALE_PENDING).replace(tzinfo=None)
        with self.db.write() as session:
            session.execute(update(Submission).where(Submission.status == "pending",
                                                     Submission.created_at < cutoff)
                            .values(status="failed", problems=["the server stopped while "
                                                               "scoring; not counted"]))


def store_upload(source, folder: Path, limit: int) -> tuple[str, Path, int]:
    """Copy an uploaded file to ``folder/<sha256>.csv`` (atomically); its hash, path and size.

    DiskFull when the disk is full; nothing half-written is left behind."""
    folder.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, temporary = tempfile.mkstemp(prefix=".incoming-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise ValueError("too large")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        target = folder / f"{digest.hexdigest()}.csv"
        os.replace(temporary, target)
    except OSError as error:
        if error.errno == 28:       # ENOSPC
            raise DiskFull() from None
        raise
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return digest.hexdigest(), target, size
