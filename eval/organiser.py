"""`python -m eval rules|participants|serve`: the organiser's side of a hosted competition."""
from __future__ import annotations

import argparse
import os
from dataclasses import replace

from eval.rules import RANKING_METRICS, read_rules, write_rules
from kit.arguments import add_workdir_option, number, usable_name, whole
from kit.competition import Competition
from kit.console import console, table
from kit.errors import KitError
from kit.workdir import Workdir

MAX_SCORING_WORKERS = 64     # each holds the answer key; --workers 100000 forked until killed


def _competition(args) -> Competition:
    competition = Competition.find(Workdir(args.workdir), args.competition)
    if not competition.answers.exists():
        raise KitError(f"competition {competition.name} has no answer key here "
                       f"({competition.answers}): only the organiser's work folder can host it")
    return competition


def _database_url(args, competition: Competition) -> str:
    """--db, else $KIT_DATABASE_URL, else SQLite in the competition's server folder (made if
    missing; a folder named in a URL must exist, see eval.server.database.connect)."""
    from eval.server.database import default_url
    if args.db is not None and not args.db.strip():     # often an unset shell variable
        raise KitError("--db is empty: give a database URL, or leave --db out for SQLite in "
                       "the competition's folder")
    given = args.db or os.environ.get("KIT_DATABASE_URL")
    if given:
        return given
    competition.server.mkdir(parents=True, exist_ok=True)
    return default_url(competition.server)


def _database(args, competition: Competition):
    from eval.server.database import Database
    return Database(_database_url(args, competition))


def cmd_rules(args) -> dict:
    """`python -m eval rules`: show or change the competition's rules."""
    competition = Competition.find(Workdir(args.workdir), args.competition)
    current = read_rules(competition.rules_path)
    rules = replace(current, deadline=None) if args.no_deadline else current
    rules = rules.updated({
        "daily_limit": args.daily_limit, "invalid_daily_limit": args.invalid_limit,
        "final_limit": args.final, "deadline": args.deadline, "metric": args.metric,
        "max_upload_mb": args.max_upload_mb}).replacing(current)
    write_rules(competition.rules_path, rules)
    if not args.json:           # --json: the rules on stdout, nothing else
        console.print(table(f"rules of {competition.name}", ["rule", "value"],
                            ((k, "none" if v is None else v)
                             for k, v in rules.as_dict().items())))
    return {"competition": competition.name, **rules.as_dict()}


def cmd_participants(args) -> dict:
    """`python -m eval participants`: add, list or revoke participants."""
    from eval.server import tokens
    competition = _competition(args)
    db = _database(args, competition)
    try:
        if args.action == "add":
            added = tokens.add_participant(db, args.name, args.team, args.baseline)
            if args.json:
                return added
            console.print(f"participant {added['participant']} in team {added['team']}; their "
                          "token (shown once, give it to them privately):")
            console.print(added["token"], soft_wrap=True, markup=False)
            return added
        if args.action == "revoke":
            return tokens.revoke_participant(db, args.name)
        rows = tokens.list_participants(db)
        if args.json:
            return {"participants": rows}
        console.print(table(f"participants of {competition.name}",
                            ["participant", "team", "baseline", "revoked", "submissions"],
                            ([r["participant"], r["team"], r["baseline"], r["revoked"],
                              r["submissions"]] for r in rows)))
        return {"participants": rows}
    finally:
        db.close()


def cmd_serve(args) -> None:
    """`python -m eval serve`: run the grading server until interrupted."""
    from eval.server.app import serve
    competition = _competition(args)
    serve(competition, _database_url(args, competition), args.host, args.port, args.workers,
          args.queue, args.body_timeout)


def add_commands(command) -> None:
    """Register the organiser's commands on the `python -m eval` parser."""
    sub = command("rules", cmd_rules, "set or show the competition's rules")
    sub.add_argument("--daily-limit", type=int, help="scored submissions per team per UTC day")
    sub.add_argument("--invalid-limit", type=int, help="invalid files per team per UTC day")
    sub.add_argument("--final", type=int, help="final selections per team")
    deadline = sub.add_mutually_exclusive_group()
    deadline.add_argument("--deadline", help="ISO 8601 UTC time, e.g. 2026-12-31T23:59:00Z")
    deadline.add_argument("--no-deadline", action="store_true", help="remove the deadline")
    sub.add_argument("--metric", choices=RANKING_METRICS, help="ranking metric")
    sub.add_argument("--max-upload-mb", type=float, help="largest accepted upload in MB")
    sub.add_argument("--json", action="store_true", help="print the rules as JSON")

    sub = command("participants", cmd_participants, "add, list or revoke participants")
    sub.add_argument("--db", help="database URL (default: SQLite in the competition's folder)")
    sub.add_argument("--json", action="store_true", help="print the result as JSON")
    actions = sub.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("add", "add a participant and print their token, once"),
                         ("list", "list the participants, their teams and submissions"),
                         ("revoke", "revoke a participant's token")):
        one = actions.add_parser(action, help=text, description=text)
        # the command's options again, so they may also follow ACTION or NAME; without
        # defaults, so they never overwrite one given before ACTION
        add_workdir_option(one, command=True)
        one.add_argument("--competition", type=usable_name, default=argparse.SUPPRESS,
                         help="competition name (default: the current one, see `kit use`)")
        one.add_argument("--db", default=argparse.SUPPRESS, help="database URL (default: "
                         "SQLite in the competition's folder)")
        one.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print the result as JSON")
        if action != "list":
            one.add_argument("name", type=usable_name, help="the participant's name")
    add = actions.choices["add"]
    add.add_argument("--team", type=usable_name,
                     help="team name (default: a team of the participant alone)")
    add.add_argument("--baseline", action="store_true",
                     help="the team is an organiser's baseline, marked as such on the board")

    sub = command("serve", cmd_serve, "run the grading server")
    sub.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1, this machine only; "
                          "0.0.0.0 for every network)")
    sub.add_argument("--port", type=whole(1, 65535), default=8000,
                     help="port to listen on (default: 8000)")
    sub.add_argument("--db", help="database URL, e.g. postgresql+psycopg://user@host/db "
                                  "(default: SQLite in the competition's folder)")
    sub.add_argument("--workers", type=whole(1, MAX_SCORING_WORKERS),
                     default=max(1, (os.cpu_count() or 2) - 1),
                     help="scoring processes (default: cores - 1, at least 1)")
    sub.add_argument("--queue", type=whole(0, 10_000), default=8,
                     help="submissions waiting beyond those being scored (default: 8)")
    sub.add_argument("--body-timeout", type=number(1, 3600), default=30.0,
                     help="seconds an upload may stall before it is cut (default: 30)")
