"""`kit <command>`: the participant- and organiser-facing command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


from kit.arguments import (SEED, WORKERS, add_scheduler_argument, add_workdir_option,
                           folder_text, number, path_text, poster_size, usable_name, whole)
from kit.console import console, print_error, summary
from kit.errors import KitError, os_error_message
from kit.hosted_commands import add_commands as add_hosted_commands
from kit.threshold_study import add_command as add_threshold_command
from kit.workdir import Workdir


def cmd_synth(args) -> dict:
    """`kit synth`: write a synthetic poster data set."""
    from kit.synth import synthesize
    return synthesize(args.out, args.n, args.seed, args.workers, args.force)


def cmd_prepare(args) -> dict:
    """`kit prepare`: ingest a poster folder into the uint8 store."""
    from kit.prepare import prepare_dataset
    return prepare_dataset(args.source, Workdir(args.workdir), args.name, args.layout, args.labels,
                           args.posters, args.size, args.shard_size, args.max_pixels,
                           args.chunksize, args.workers, args.scheduler)


def cmd_report(args) -> dict:
    """`kit report`: redraw a dataset's report from its store."""
    from kit.prepare import redraw_report
    workdir = Workdir(args.workdir)
    return redraw_report(workdir, args.dataset or workdir.latest_dataset())


def cmd_split(args) -> dict:
    """`kit split`: freeze the competition's splits and its private answer key."""
    from kit.splits import SplitOptions, make_competition
    workdir = Workdir(args.workdir)
    options = SplitOptions(args.sample, args.test, args.valid, args.public, args.min_support,
                           args.seed)
    return make_competition(workdir, args.dataset or workdir.latest_dataset(), options)


def cmd_use(args) -> dict:
    """`kit use`: make a competition the work folder's current one."""
    from kit.competition import use_competition
    return use_competition(Workdir(args.workdir), args.name)


def cmd_audit(args) -> dict:
    """`kit audit`: what a balancing strategy does to the training labels."""
    from kit import balancing
    from kit.competition import Competition
    competition = Competition.find(Workdir(args.workdir), args.competition)
    parts = competition.labelled_parts()
    genres = competition.genres()
    train = parts["train"].labels
    balance = balancing.plan(args.strategy, train, parts["valid"].labels, args.seed,
                             **balance_options(args), genres=genres)
    out = Workdir(args.workdir).root / "audits" / competition.name
    return balancing.audit(args.strategy, train, genres, balance, out, args.seed)


def train_config(args):
    """The run's configuration: --config file (or defaults), then explicit options on top."""
    from kit.train.config import TrainConfig, config_file
    from kit.train.config_options import given_options
    config = TrainConfig.from_file(config_file(args.config)) if args.config else TrainConfig()
    return config.updated(given_options(args), "the command line")


def cmd_train(args) -> dict:
    """`kit train`: train a run (or a cross-fitted ensemble) from public files only."""
    config = train_config(args)         # checked before torch is imported
    from kit.train.run import train
    name = args.name or (Path(args.config).stem if args.config else config.model.replace(":", "-"))
    return train(config, Workdir(args.workdir), name, args.competition, args.resume,
                 args.scheduler)


def cmd_predict(args) -> dict:
    """`kit predict`: write a run's submission CSV."""
    from kit.predict import predict
    return predict(Workdir(args.workdir), args.run, args.out, args.name, args.raw,
                   part=args.part)


def cmd_search(args) -> dict:
    """`kit search`: random search over hyperparameters, scored out of fold."""
    config = train_config(args)
    from kit.train.search import random_search
    return random_search(config, Workdir(args.workdir), args.name, args.trials,
                         args.trial_epochs, tuple(args.lr_range), args.search_seed,
                         args.competition, tuple(args.space), args.seeds, args.scheduler)


def cmd_baseline(args) -> dict:
    """`kit baseline`: the whole path from data to a score."""
    from kit.baseline import run_baseline
    return run_baseline(Workdir(args.workdir), args.baseline, args.data, args.films, args.seed,
                        args.submissions, args.epochs)


def cmd_compare(args) -> dict:
    """`kit compare`: one model per balancing strategy, scored and reported."""
    config = train_config(args)
    from kit.compare import compare
    return compare(config, Workdir(args.workdir), args.strategies, args.competition,
                   args.submissions, args.prefix, args.bootstrap, args.scheduler, args.seeds)


def add_train_arguments(sub: argparse.ArgumentParser) -> None:
    """--config, --competition and one option per TrainConfig field (they override the file)."""
    from kit.train.config_options import add_config_arguments
    sub.add_argument("--config", type=path_text,
                     help="baseline TOML file (e.g. baselines/lenet.toml), or the name of "
                     "one of the kit's baselines (lenet)")
    sub.add_argument("--competition", type=usable_name,
                     help="competition name (default: the current one, see `kit use`)")
    add_config_arguments(sub)


def balance_options(args) -> dict:
    """The balancing options given on the command line, by their strategy keyword."""
    return {"min_count": args.min_count, "target_size": args.target_size,
            "weight_cap": args.weight_cap}


def add_balance_arguments(sub: argparse.ArgumentParser) -> None:
    """The balancing options of `kit audit` and `kit train`."""
    from kit.balancing import STRATEGIES
    sub.add_argument("--balance", "--strategy", dest="strategy", default="none",
                     choices=list(STRATEGIES), help="balancing strategy (default: %(default)s)")
    sub.add_argument("--min-count", type=whole(1, 10**9), help="min-per-genre: films per genre (M)")
    sub.add_argument("--target-size", type=whole(1, 10**9),
                     help="min-per-genre: derive M so the training set has about this many films")
    sub.add_argument("--weight-cap", type=number(0.01, 1e6), default=50.0,
                     help="class-weight: largest pos_weight (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `kit` and its commands."""
    from kit.train.config import DEFAULT_SEARCH_SPACE, SEARCHABLE
    parser = argparse.ArgumentParser(prog="kit", description=__doc__)
    add_workdir_option(parser, command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        add_workdir_option(sub, command=True)
        sub.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
        sub.set_defaults(handler=handler)
        return sub

    sub = command("synth", cmd_synth, "write a synthetic poster data set (Letterboxd layout)")
    sub.add_argument("--out", type=path_text, required=True, help="folder to write")
    sub.add_argument("--n", type=whole(1, 10**7), default=3000, help="films (default: %(default)s)")
    sub.add_argument("--seed", type=SEED, default=0,
                     help="seed of the posters and genres drawn (default: %(default)s)")
    sub.add_argument("--workers", type=WORKERS, default=None,
                     help="processes (default: all cores, at most 8)")
    sub.add_argument("--force", action="store_true",
                     help="replace the data set in a folder that is not empty")

    sub = command("prepare", cmd_prepare, "ingest a poster data set into the preprocessed store")
    sub.add_argument("source", type=path_text,
                     help="data folder (Letterboxd, wide one-hot or list layout)")
    sub.add_argument("--name", type=usable_name, help="dataset name (default: the folder's name)")
    sub.add_argument("--layout", choices=["letterboxd", "wide", "list"], help="skip detection")
    sub.add_argument("--labels", type=path_text,
                     help="label CSV inside the folder (default: detected)")
    sub.add_argument("--posters", type=path_text,
                     help="poster folder, from the current folder (default: the data "
                          "folder's posters/ or Images/)")
    sub.add_argument("--size", type=poster_size, default=(345, 230), help="HEIGHTxWIDTH (345x230)")
    sub.add_argument("--shard-size", type=whole(1, 100_000), default=256,
                     help="posters per shard (256)")
    sub.add_argument("--max-pixels", type=whole(64, 10**10), default=60_000_000,
                     help="larger images are refused as decompression bombs (60,000,000)")
    sub.add_argument("--chunksize", type=whole(1, 10**8), default=500_000,
                     help="label CSV rows per chunk")
    sub.add_argument("--workers", type=WORKERS, default=None,
                     help="processes (default: one more than the cores, so a worker waiting on "
                          "the disk leaves its core to another)")
    add_scheduler_argument(sub)

    sub = command("report", cmd_report, "redraw the data report of a prepared dataset")
    sub.add_argument("--dataset", type=usable_name,
                     help="dataset name (default: the latest prepared)")
    sub = command("split", cmd_split, "freeze a competition: stratified train/valid/test split")
    sub.add_argument("--dataset", type=usable_name, help="prepared dataset (default: the latest)")
    sub.add_argument("--sample", type=whole(1, 10**9), help="use N randomly chosen films")
    sub.add_argument("--test", type=float, default=0.3, help="test fraction of all (0.3)")
    sub.add_argument("--valid", type=float, default=0.2, help="valid fraction of the rest (0.2)")
    sub.add_argument("--public", type=float, default=0.5,
                     help="public fraction of the test part (0.5)")
    sub.add_argument("--min-support", type=whole(1, 10**9), default=10,
                     help="drop genres with fewer films (10)")
    sub.add_argument("--seed", type=SEED, default=0,
                     help="seed of the stratified split (default: %(default)s)")

    sub = command("train", cmd_train, "train a model (early stopping, checkpoints, --resume)")
    sub.add_argument("--name", type=usable_name,
                     help="run name (default: the config file's or model's name)")
    sub.add_argument("--resume", action="store_true", help="continue an interrupted run")
    add_train_arguments(sub)
    add_scheduler_argument(sub)

    sub = command("predict", cmd_predict, "write a submission CSV from a trained run")
    sub.add_argument("--run", type=usable_name, required=True, help="run name")
    sub.add_argument("--out", type=folder_text,
                     default="submissions", help="folder (default: %(default)s)")
    sub.add_argument("--name", type=usable_name, help="submission name (default: the run's)")
    sub.add_argument("--raw", action="store_true",
                     help="raw probabilities, not rescaled to the tuned thresholds")
    sub.add_argument("--part", choices=["test", "valid"], default="test",
                     help="films to predict: test (a submission, default) or valid")

    sub = command("search", cmd_search, "random search over the head's and training's "
                  "hyperparameters")
    sub.add_argument("--name", default="search", type=usable_name,
                     help="search name (default: %(default)s)")
    sub.add_argument("--trials", type=whole(1, 10_000), default=8,
                     help="hyperparameter draws (default: %(default)s)")
    sub.add_argument("--trial-epochs", type=whole(1, 100_000), default=5,
                     help="epoch budget of each trial (default: %(default)s)")
    sub.add_argument("--lr-range", type=number(1e-12, 10.0), nargs=2, default=[1e-4, 1e-2],
                     metavar=("LOW", "HIGH"),
                     help="learning rates drawn log-uniformly between (default: 1e-4 1e-2)")
    sub.add_argument("--search-seed", type=SEED, default=0,
                     help="seed of the draws, apart from the trials' training seed "
                     "(default: %(default)s)")
    sub.add_argument("--space", nargs="+", choices=SEARCHABLE,
                     default=list(DEFAULT_SEARCH_SPACE),
                     help="hyperparameters to draw (default: %(default)s)")
    sub.add_argument("--seeds", type=whole(1, 100), default=1,
                     help="seeds per trial; the table shows mean and spread (default: 1)")
    add_train_arguments(sub)
    add_scheduler_argument(sub)

    sub = command("compare", cmd_compare,
                  "train one model per balancing strategy, score all, write a comparison report")
    sub.add_argument("--strategies", nargs="+",
                     help="none min-per-genre class-weight sampler asymmetric-loss (default: all)")
    sub.add_argument("--submissions", type=path_text, default="submissions",
                     help="folder for the submissions (default: %(default)s)")
    sub.add_argument("--prefix", default="compare", help="run and submission name prefix")
    sub.add_argument("--bootstrap", type=whole(0, 100_000), default=1000,
                     help="bootstrap resamples")
    sub.add_argument("--seeds", type=whole(1, 50), default=None,
                     help="seeds per strategy (default: 3 when a typical run takes under a "
                          "minute, else 1)")
    add_train_arguments(sub)
    add_scheduler_argument(sub)

    sub = command("baseline", cmd_baseline, "the whole baseline: data to score")
    sub.add_argument("--baseline", default="lenet", help="baseline name or TOML file")
    sub.add_argument("--data", type=path_text, help="data folder (default: synthetic posters)")
    sub.add_argument("--films", type=whole(10, 10**7), default=3000, help="synthetic films (3000)")
    sub.add_argument("--seed", type=SEED, default=0,
                     help="seed of the synthetic posters (when first written) and of the split "
                     "(default: %(default)s)")
    sub.add_argument("--epochs", type=whole(1, 100_000),
                     help="override the baseline's epoch budget")
    sub.add_argument("--submissions", type=path_text, default="submissions",
                     help="folder for the submissions (default: %(default)s)")

    sub = command("use", cmd_use, "make a competition the work folder's current one")
    sub.add_argument("name", type=usable_name, help="competition name (see work/competitions/)")

    sub = command("audit", cmd_audit, "balancing audit: label distribution before/after")
    sub.add_argument("--competition", type=usable_name,
                     help="competition name (default: the current one, see `kit use`)")
    sub.add_argument("--seed", type=SEED, default=0,
                     help="seed of the balancing's draws (default: %(default)s)")
    add_balance_arguments(sub)
    add_threshold_command(command)
    add_hosted_commands(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `kit` command; its exit code (2: bad input, never a traceback)."""
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except KitError as error:
        print_error(str(error), getattr(error, "problems", []))
        return getattr(error, "exit_code", 2)
    except OSError as error:
        print_error(os_error_message(error))
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; finished work is kept, re-run to resume", style="yellow")
        return 130
    if result is not None:      # None: a torchrun rank other than 0, or a report already printed
        summary(f"kit {args.command}", result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
