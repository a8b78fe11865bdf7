"""Public and private leaderboards from the database.

Public: each team's best public score (earliest first on a tie). Private, once closed: each
team's best private score among its selected finals (its best public ones when it selected
none), with its public rank beside it (the shake-up)."""
from __future__ import annotations

from sqlalchemy import func, select

from eval.rules import Rules
from eval.server.database import Database, Submission, Team


def iso(moment) -> str | None:
    """A naive UTC datetime as ISO 8601 with a Z; None stays None."""
    return moment.isoformat(timespec="seconds") + "Z" if moment else None


def _ranks(rows: list[dict], field: str) -> None:
    """Competition ranking (1, 2, 2, 4) of ``rows`` already sorted by ``field``."""
    previous, rank = object(), 0
    for position, row in enumerate(rows, 1):
        if row[field] != previous:
            rank, previous = position, row[field]
        row["rank"] = rank


def public_rows(db: Database) -> list[dict]:
    """One row per team with a scored submission: rank, best public score and its interval."""
    scored = Submission.status == "scored"
    ranked = select(Submission.team_id, Submission.id, Submission.public_metric,
                    Submission.public_low, Submission.public_high, Submission.created_at,
                    func.row_number().over(partition_by=Submission.team_id,
                                           order_by=(Submission.public_metric.desc(),
                                                     Submission.id)).label("n")
                    ).where(scored).subquery()
    with db.reading() as session:
        best = session.execute(select(ranked).where(ranked.c.n == 1)).all()
        stats = {r.team_id: r for r in session.execute(
            select(Submission.team_id, func.count().label("entries"),
                   func.max(Submission.created_at).label("last"))
            .where(scored).group_by(Submission.team_id)).all()}
        teams = {t.id: t for t in session.execute(select(Team.id, Team.name, Team.baseline))}
    rows = [{"team": teams[r.team_id].name, "baseline": teams[r.team_id].baseline,
             "score": r.public_metric,
             "interval": [r.public_low, r.public_high] if r.public_low is not None else None,
             "entries": stats[r.team_id].entries, "last_submission": iso(stats[r.team_id].last),
             "best": r.id, "_best_at": r.created_at} for r in best]
    rows.sort(key=lambda r: (-(r["score"] if r["score"] is not None else float("-inf")),
                             r["_best_at"], r["best"]))
    _ranks(rows, "score")
    for row in rows:
        del row["_best_at"]
    return rows


def private_rows(db: Database, rules: Rules, public: list[dict]) -> list[dict]:
    """One row per team, ranked by the private score of its finals, public rank beside it."""
    public_rank = {row["team"]: row["rank"] for row in public}
    with db.reading() as session:
        found = session.execute(
            select(Team.name, Team.baseline, Submission.id, Submission.public_metric,
                   Submission.private_metric, Submission.final)
            .join(Team, Team.id == Submission.team_id)
            .where(Submission.status == "scored")).all()
    by_team: dict[str, list] = {}
    for row in found:
        by_team.setdefault(row.name, []).append(row)
    rows = []
    for team, entries in by_team.items():
        finals = [e for e in entries if e.final]
        chosen = finals or sorted(entries, key=lambda e: (-(e.public_metric or 0), e.id)
                                  )[:rules.final_limit]
        best = max(chosen, key=lambda e: (e.private_metric or 0, -e.id))
        rows.append({"team": team, "baseline": entries[0].baseline,
                     "score": best.private_metric, "submission": best.id,
                     "selected": "chosen" if finals else "best public",
                     "public_rank": public_rank.get(team)})
    rows.sort(key=lambda r: (-(r["score"] or 0), r["public_rank"] or 0))
    _ranks(rows, "score")
    for row in rows:
        row["shake_up"] = (row["public_rank"] - row["rank"]) if row["public_rank"] else None
    return rows


def best_files(db: Database, rows: list[dict]) -> list[str]:
    """The stored file (SHA-256) of each row's best submission, in board order."""
    ids = [row["best"] for row in rows]
    with db.reading() as session:
        found = dict(session.execute(select(Submission.id, Submission.sha256)
                                     .where(Submission.id.in_(ids))).all())
    return [found[i] for i in ids]


def with_references(rows: list[dict], references: dict, metric: str) -> list[dict]:
    """The board with the reference predictors placed among the teams (unranked)."""
    marked = [{"team": f"reference: {name.replace('_', ' ')}", "reference": True, "rank": None,
               "score": scores.get(metric)} for name, scores in references.items()]
    merged = [dict(row, reference=False) for row in rows] + marked
    merged.sort(key=lambda r: -(r["score"] if r["score"] is not None else float("-inf")))
    return merged
