"""`python -m eval score|leaderboard|close|rules|participants|serve`: the harness participants
trust, and the organiser's grading server."""
from __future__ import annotations

import argparse
import json
import sys

from rich.text import Text

from eval.answers import find_answers, load_answers
from eval.metrics import DEFAULT_RESAMPLES
from eval.organiser import add_commands
from eval.scoring import score_submission
from eval.submission import SubmissionError
from kit.arguments import add_workdir_option, path_text, usable_name
from kit.console import console, print_error, table
from kit.errors import KitError, os_error_message, visible
from kit.files import write_json
from kit.workdir import Workdir

HEADLINE = ["accuracy", "error_rate", "subset_accuracy", "f1_micro", "f1_macro", "f1_weighted",
            "f1_samples", "precision_micro", "recall_micro", "precision_macro", "recall_macro",
            "ap_macro", "roc_auc_macro"]


def print_score(result: dict) -> None:
    """The rich tables of one scored submission."""
    parts = [p for p in ("public", "private") if p in result]
    console.print(Text.assemble((visible(result["submission"]), "bold"),
                                f" ({result['kind']}, threshold {result['threshold']}) on "
                                f"competition {result['competition']}"))
    rows = []
    for metric in HEADLINE:
        if all(result[p].get(metric) is None for p in parts):
            continue
        cells = []
        for part in parts:
            value = result[part].get(metric)
            span = result[part].get(f"{metric}_interval")
            cells.append("-" if value is None else f"{value:.4f}" + (
                f" [{span[0]:.3f}, {span[1]:.3f}]" if span else ""))
        rows.append([metric, *cells])
    console.print(table("metrics on the natural test distribution (95% bootstrap interval)",
                        ["metric", *parts], rows))
    first = result[parts[0]]
    console.print(table(f"per genre ({parts[0]})", ["genre", "precision", "recall", "f1",
                                                      "support", "predicted"],
                        ([g["genre"], g["precision"], g["recall"], g["f1"], g["support"],
                          g["predicted"]] for g in first["per_genre"])))
    references = [[name, r["f1_micro"], r["f1_macro"], r["accuracy"]]
                  for name, r in first["references"].items()]
    console.print(table(f"reference predictors ({parts[0]})",
                        ["reference", "f1_micro", "f1_macro", "accuracy"], references))
    if "against" in first:
        for metric, comparison in first["against"].items():
            span = comparison["interval"]
            console.print(f"difference in {metric} F1 against the other submission: "
                          f"{comparison['difference']:+.4f}" +
                          (f" [{span[0]:+.4f}, {span[1]:+.4f}]" if span else ""))
    if not first["beats_references"]:
        console.print(Text.assemble(("flag:", "bold yellow"), " this submission does not beat "
                                    "every reference predictor on both micro and macro F1"))
    if not result["private_shown"]:
        console.print("private part hidden (use --reveal-private, or close the competition)")


def cmd_score(args) -> int:
    """`python -m eval score`: score one submission; exit code 2 when invalid."""
    key = load_answers(find_answers(Workdir(args.workdir), args.competition, args.answers))
    result = score_submission(args.submission, key, args.threshold, args.bootstrap, args.against,
                              args.reveal_private)
    if args.out:
        write_json(args.out, result)
    if args.grid:
        from eval.scoring import draw_grid
        draw_grid(args.grid, args.submission, key, args.threshold)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        print_score(result)
    return 0


def cmd_leaderboard(args) -> int:
    """`python -m eval leaderboard`: score and rank a folder of submissions."""
    from eval.leaderboard import build_leaderboard, submissions_in
    key = load_answers(find_answers(Workdir(args.workdir), args.competition, args.answers))
    out = args.out or str(Workdir(args.workdir).root / "leaderboard")
    board = build_leaderboard(submissions_in(args.folder), key, out, args.metric,
                              args.threshold, args.bootstrap, args.reveal_private)
    if args.json:
        sys.stdout.write(json.dumps(board) + "\n")
    return 0


def cmd_close(args) -> dict:
    """`python -m eval close`: close the competition and reveal the private part."""
    from kit.competition import Competition
    competition = Competition.find(Workdir(args.workdir), args.competition)
    competition.closed_marker.write_text("closed\n")
    console.print(f"competition {competition.name} is closed: private scores are now shown, "
                  "and the grading server ranks by the private part")
    return {"competition": competition.name, "closed": True}


def resamples(text: str) -> int:
    """A bootstrap resample count: a whole number from 0 (no intervals) to 100,000."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if not 0 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be from 0 to 100000, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m eval` and its commands."""
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__)
    add_workdir_option(parser, command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, handler, help):
        sub = commands.add_parser(name, help=help, description=help)
        add_workdir_option(sub, command=True)
        sub.add_argument("--competition", type=usable_name,
                         help="competition name (default: the current one, see `kit use`)")
        sub.set_defaults(handler=handler)
        return sub

    def scoring_options(sub):
        sub.add_argument("--answers", type=path_text,
                         help="answer key CSV (default: the competition's)")
        sub.add_argument("--threshold", type=float, default=0.5,
                         help="probabilities at or above it count as predicted (0.5)")
        sub.add_argument("--bootstrap", type=resamples, default=DEFAULT_RESAMPLES,
                         help="bootstrap resamples for intervals, 0 for none (%(default)s)")
        sub.add_argument("--reveal-private", action="store_true",
                         help="also score the private part")
        sub.add_argument("--json", action="store_true", help="print the result as JSON")

    sub = command("score", cmd_score, "score one submission CSV")
    sub.add_argument("submission", type=path_text, help="submission CSV")
    sub.add_argument("--against", type=path_text,
                     help="another submission: paired bootstrap comparison")
    sub.add_argument("--out", type=path_text, help="also write the result as JSON to this file")
    sub.add_argument("--grid", type=path_text,
                     help="also draw public test posters with true and predicted "
                          "genres (the report's Figure 5) to this PNG file")
    scoring_options(sub)

    sub = command("leaderboard", cmd_leaderboard, "score every CSV in a folder and rank them")
    sub.add_argument("folder", type=path_text, nargs="?", default="submissions",
                     help="folder of submission CSVs (default: %(default)s)")
    sub.add_argument("--metric", default="f1_macro", help="ranking metric (f1_macro)")
    sub.add_argument("--out", type=path_text, help="report folder (default: WORKDIR/leaderboard)")
    scoring_options(sub)

    sub = command("close", cmd_close, "close a competition: private scores become visible")
    sub.add_argument("--json", action="store_true", help="print the result as JSON")
    add_commands(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `python -m eval` command; its exit code (2: bad input, never a traceback)."""
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except SubmissionError as error:
        print_error(f"{getattr(args, 'submission', '')}:", error.problems,
                    title="invalid submission")
        return 2
    except KitError as error:
        print_error(str(error))
        return 2
    except OSError as error:
        print_error(os_error_message(error))
        return 2
    except KeyboardInterrupt:
        return 130
    if isinstance(result, dict):
        if args.json:
            sys.stdout.write(json.dumps(result) + "\n")
        return 0
    return result or 0
