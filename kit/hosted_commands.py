"""The commands of a hosted competition: `kit export` (organiser), `kit join`, `kit submit`,
`kit submissions`, `kit final` (participant)."""
from __future__ import annotations

from kit.arguments import (WORKERS, add_scheduler_argument, message_text, path_text, server_url,
                           usable_name, whole)
from kit.console import console, table
from kit.workdir import Workdir


def cmd_export(args) -> dict:
    """`kit export`: write the participant bundle (no test label)."""
    from kit.bundle import export_bundle
    return export_bundle(Workdir(args.workdir), args.competition, args.out, args.server)


def cmd_join(args) -> dict:
    """`kit join`: unpack a participant bundle into this work folder."""
    from kit.join import join_bundle
    return join_bundle(Workdir(args.workdir), args.bundle, args.workers, args.scheduler)


def cmd_submit(args) -> dict:
    """`kit submit`: check a submission locally, then send it to the server."""
    from kit.client import submit
    result = submit(Workdir(args.workdir), args.submission, args.server, args.token,
                    args.message, args.competition, args.check)
    if not args.json and not args.check:
        score, span = result["public_score"], result["interval"]
        console.print(f"scored: public {result['metric']} "
                      + (f"{score:.4f}" if score is not None else "-")
                      + (f" [{span[0]:.3f}, {span[1]:.3f}]" if span else "")
                      + f", rank {result['rank']}; {result['remaining_today']} submissions left "
                        f"today (the limit resets at {result['resets_at']})")
        return None
    return result


def cmd_submissions(args) -> dict:
    """`kit submissions`: this team's submissions on the server."""
    from kit.client import submissions
    result = submissions(Workdir(args.workdir), args.server, args.token, args.competition)
    if not args.json:
        console.print(table(
            f"submissions of team {result['team']}",
            ["id", "when", "status", "score", "final", "file", "message"],
            ([s["id"], s["created_at"], s["status"], s["score"] if s["score"] is not None
              else "-", "yes" if s["final"] else "", s["filename"],
              s["message"][:40]] for s in result["submissions"])))
        console.print(f"{result['remaining_today']} submissions left today; the limit resets at "
                      f"{result['resets_at']}")
        return None
    return result


def cmd_final(args) -> dict:
    """`kit final`: choose this team's final submissions."""
    from kit.client import select_final
    return select_final(Workdir(args.workdir), args.id, not args.unselect, args.server,
                        args.token, args.competition)


def add_commands(command) -> None:
    """Register these commands on the `kit` parser."""
    sub = command("export", cmd_export, "write the participant bundle of a competition "
                                        "(public files and posters, no test label)")
    sub.add_argument("--competition", type=usable_name,
                     help="competition name (default: the current one, see `kit use`)")
    sub.add_argument("--out", type=path_text, help="bundle file, .tar.gz or .zip "
                                   "(default: WORKDIR/bundles/<competition>.tar.gz)")
    sub.add_argument("--server", type=server_url,
                     help="the grading server's URL, written into the bundle")

    sub = command("join", cmd_join, "join a competition from its participant bundle")
    sub.add_argument("bundle", type=path_text, help="the .tar.gz or .zip the organiser published")
    sub.add_argument("--workers", type=WORKERS, default=None,
                     help="processes (default: all cores)")
    add_scheduler_argument(sub)

    def client_options(sub):
        sub.add_argument("--competition", type=usable_name,
                         help="competition name (default: the current one, see `kit use`)")
        sub.add_argument("--server", type=server_url,
                         help="grading server URL (default: the bundle's)")
        sub.add_argument("--token", help="your token (default: $KIT_TOKEN, then "
                                         "~/.config/poster-genre-kit/token)")

    sub = command("submit", cmd_submit, "check a submission locally, then send it to the "
                                        "grading server")
    sub.add_argument("submission", type=path_text, help="submission CSV")
    sub.add_argument("--message", "-m", default="", type=message_text,
                     help="a note shown beside it (at most 1,000 characters)")
    sub.add_argument("--check", action="store_true",
                     help="only validate the file locally; send nothing")
    client_options(sub)

    sub = command("submissions", cmd_submissions, "your team's submissions and public scores")
    client_options(sub)

    sub = command("final", cmd_final, "select a submission for the private leaderboard")
    sub.add_argument("id", type=whole(1, 2**62), help="submission id (see `kit submissions`)")
    sub.add_argument("--unselect", action="store_true", help="remove it from the finals")
    client_options(sub)
