"""`kit <command>`: the participant- and organiser-facing command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.markup import escape

from kit.console import console, summary
from kit.errors import KitError
from kit.hosted_commands import add_commands as add_hosted_commands
from kit.workdir import DEFAULT_WORKDIR, Workdir


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 345x230, got {text!r}")
    if height < 8 or width < 8:
        raise argparse.ArgumentTypeError("image height and width must be at least 8")
    return height, width


def cmd_synth(args) -> dict:
    from kit.synth import synthesize
    return synthesize(args.out, args.n, args.seed, args.workers)


def cmd_prepare(args) -> dict:
    from kit.prepare import prepare_dataset
    return prepare_dataset(args.source, Workdir(args.workdir), args.name, args.layout, args.labels,
                           args.posters, args.size, args.shard_size, args.max_pixels,
                           args.chunksize, args.workers, args.scheduler)


def cmd_report(args) -> dict:
    from kit.prepare import redraw_report
    workdir = Workdir(args.workdir)
    return redraw_report(workdir, args.dataset or workdir.latest_dataset())


def cmd_split(args) -> dict:
    from kit.splits import SplitOptions, make_competition
    workdir = Workdir(args.workdir)
    options = SplitOptions(args.sample, args.test, args.valid, args.public, args.min_support,
                           args.seed)
    return make_competition(workdir, args.dataset or workdir.latest_dataset(), options)


def cmd_audit(args) -> dict:
    from kit import balancing
    from kit.labels import encode
    from kit.competition import Competition
    competition = Competition.find(Workdir(args.workdir), args.competition)
    table_ = competition.train_table()
    genres = competition.genres()
    train = encode(table_.loc[table_["part"] == "train", "genres"], genres)
    valid = encode(table_.loc[table_["part"] == "valid", "genres"], genres)
    balance = balancing.plan(args.strategy, train, valid, args.seed, **balance_options(args),
                             genres=genres)
    out = Workdir(args.workdir).root / "audits" / competition.name
    return balancing.audit(args.strategy, train, genres, balance, out, args.seed)


TRAIN_OVERRIDES = ("model", "frozen", "views", "head_hidden", "precision", "pretrained",
                   "hub_weights", "strategy", "min_count", "target_size", "weight_cap", "loss",
                   "optimizer", "lr", "weight_decay", "dropout", "batch_size", "epochs",
                   "patience", "augment", "tune_thresholds", "seed", "workers", "folds")


def train_config(args):
    """The run's configuration: --config file (or defaults), then explicit options on top."""
    from kit.training import TrainConfig
    config = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    given = {("balance" if key == "strategy" else key): getattr(args, key)
             for key in TRAIN_OVERRIDES if getattr(args, key, None) is not None}
    return config.updated(given)


def cmd_train(args) -> dict:
    from kit.training import train
    config = train_config(args)
    name = args.name or (Path(args.config).stem if args.config else config.model.replace(":", "-"))
    return train(config, Workdir(args.workdir), name, args.competition, args.resume,
                 args.scheduler)


def cmd_predict(args) -> dict:
    from kit.predict import predict
    return predict(Workdir(args.workdir), args.run, args.out, args.name, args.raw,
                   part=args.part)


def cmd_search(args) -> dict:
    from kit.search import random_search
    return random_search(train_config(args), Workdir(args.workdir), args.name, args.trials,
                         args.trial_epochs, tuple(args.lr_range), args.search_seed,
                         args.competition)


def cmd_baseline(args) -> dict:
    from kit.baseline import run_baseline
    return run_baseline(Workdir(args.workdir), args.baseline, args.data, args.films, args.seed,
                        args.submissions, args.epochs)


def cmd_compare(args) -> dict:
    from kit.compare import compare
    return compare(train_config(args), Workdir(args.workdir), args.strategies, args.competition,
                   args.submissions, args.prefix, args.bootstrap, args.scheduler)


def add_train_arguments(sub: argparse.ArgumentParser) -> None:
    """Options that override the --config file; unset ones keep the file's (or default) value.

    Names (loss, optimizer, precision, model) are checked by TrainConfig, so that building this
    parser never imports torch (900 MB and 4 s for every command)."""
    sub.add_argument("--config", help="baseline TOML file (e.g. baselines/lenet.toml)")
    sub.add_argument("--competition", help="competition name (default: the latest)")
    sub.add_argument("--model", help="lenet, efficientnet_lite0/1/2 or timm:<name>")
    sub.add_argument("--frozen", action="store_true", default=None,
                     help="train a head on cached frozen-backbone embeddings")
    sub.add_argument("--views", nargs="+", help="frozen mode: full top middle bottom flip")
    sub.add_argument("--head-hidden", type=int, help="frozen mode: hidden units (0: logistic)")
    sub.add_argument("--precision",
                     help="bf16 or fp32: autocast of frozen-mode embeddings or of image-model "
                          "training steps (default bf16; fp32 on CPUs without native bf16)")
    sub.add_argument("--pretrained", help="local checkpoint for a timm model")
    sub.add_argument("--hub-weights", action="store_true", default=None,
                     help="download timm hub weights (fails offline)")
    sub.add_argument("--balance", "--strategy", dest="strategy",
                     help="none, min-per-genre, class-weight, sampler")
    sub.add_argument("--min-count", type=int, help="min-per-genre: films per genre (M)")
    sub.add_argument("--target-size", type=int, help="min-per-genre: training films wanted")
    sub.add_argument("--weight-cap", type=float, help="class-weight: largest pos_weight")
    sub.add_argument("--loss", help="bce, asl or focal")
    sub.add_argument("--optimizer", help="adam, adamw or sgd")
    sub.add_argument("--lr", type=float)
    sub.add_argument("--weight-decay", type=float)
    sub.add_argument("--dropout", type=float)
    sub.add_argument("--batch-size", type=int)
    sub.add_argument("--epochs", type=int)
    sub.add_argument("--patience", type=int, help="early stopping patience in epochs")
    sub.add_argument("--augment", action="store_true", default=None,
                     help="albumentations flips, affine and colour jitter")
    sub.add_argument("--no-tune-thresholds", dest="tune_thresholds", action="store_false",
                     default=None)
    sub.add_argument("--seed", type=_integer)
    sub.add_argument("--workers", type=int, help="data loader processes")
    sub.add_argument("--folds", type=int,
                     help="cross-fit: one model per fold of train+valid, thresholds tuned on "
                          "their out-of-fold predictions, their mean predicts (default 1: off)")


def balance_options(args) -> dict:
    """The balancing options given on the command line, by their strategy keyword."""
    return {"min_count": args.min_count, "target_size": args.target_size,
            "weight_cap": args.weight_cap}


def add_balance_arguments(sub: argparse.ArgumentParser) -> None:
    from kit.balancing import STRATEGIES
    sub.add_argument("--balance", "--strategy", dest="strategy", default="none",
                     choices=list(STRATEGIES), help="balancing strategy (default: %(default)s)")
    sub.add_argument("--min-count", type=int, help="min-per-genre: films per genre (M)")
    sub.add_argument("--target-size", type=int,
                     help="min-per-genre: derive M so the training set has about this many films")
    sub.add_argument("--weight-cap", type=float, default=50.0,
                     help="class-weight: largest pos_weight (default: %(default)s)")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")


def _scheduler(text: str) -> str:
    from kit.scheduler import check_scheduler
    try:
        return check_scheduler(text)
    except KitError as error:
        raise argparse.ArgumentTypeError(str(error))


def add_scheduler_argument(sub: argparse.ArgumentParser, default: str = "local") -> None:
    sub.add_argument("--scheduler", default=default, type=_scheduler,
                     help="local (a Dask LocalCluster), processes (a plain process pool), "
                          "inline, or tcp://host:port (an existing Dask cluster); default "
                          "%(default)s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--workdir", default=DEFAULT_WORKDIR,
                         help="folder for generated data, stores, runs (default: %(default)s)")
        sub.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
        sub.set_defaults(handler=handler)
        return sub

    sub = command("synth", cmd_synth, "write a synthetic poster data set (Letterboxd layout)")
    sub.add_argument("--out", required=True, help="folder to write")
    sub.add_argument("--n", type=int, default=3000, help="films (default: %(default)s)")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")

    sub = command("prepare", cmd_prepare, "ingest a poster data set into the preprocessed store")
    sub.add_argument("source", help="data folder (Letterboxd, wide one-hot or list layout)")
    sub.add_argument("--name", help="dataset name (default: the folder's name)")
    sub.add_argument("--layout", choices=["letterboxd", "wide", "list"], help="skip detection")
    sub.add_argument("--labels", help="label CSV inside the folder (default: detected)")
    sub.add_argument("--posters", help="poster folder (default: posters/ or Images/)")
    sub.add_argument("--size", type=_size, default=(345, 230), help="HEIGHTxWIDTH (345x230)")
    sub.add_argument("--shard-size", type=int, default=256, help="posters per shard (256)")
    sub.add_argument("--max-pixels", type=int, default=60_000_000,
                     help="larger images are refused as decompression bombs (60,000,000)")
    sub.add_argument("--chunksize", type=int, default=500_000, help="label CSV rows per chunk")
    sub.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    add_scheduler_argument(sub)

    sub = command("report", cmd_report, "redraw the data report of a prepared dataset")
    sub.add_argument("--dataset", help="dataset name (default: the latest prepared)")
    sub = command("split", cmd_split, "freeze a competition: stratified train/valid/test split")
    sub.add_argument("--dataset", help="prepared dataset (default: the latest)")
    sub.add_argument("--sample", type=_integer, help="use N randomly chosen films")
    sub.add_argument("--test", type=float, default=0.3, help="test fraction of all (0.3)")
    sub.add_argument("--valid", type=float, default=0.2, help="valid fraction of the rest (0.2)")
    sub.add_argument("--public", type=float, default=0.5,
                     help="public fraction of the test part (0.5)")
    sub.add_argument("--min-support", type=_integer, default=10,
                     help="drop genres with fewer films (10)")
    sub.add_argument("--seed", type=_integer, default=0)

    sub = command("train", cmd_train, "train a model (early stopping, checkpoints, --resume)")
    sub.add_argument("--name", help="run name (default: the config file's or model's name)")
    sub.add_argument("--resume", action="store_true", help="continue an interrupted run")
    add_train_arguments(sub)
    add_scheduler_argument(sub)

    sub = command("predict", cmd_predict, "write a submission CSV from a trained run")
    sub.add_argument("--run", required=True, help="run name")
    sub.add_argument("--out", default="submissions", help="folder (default: %(default)s)")
    sub.add_argument("--name", help="submission name (default: the run's)")
    sub.add_argument("--raw", action="store_true",
                     help="raw probabilities, not rescaled to the tuned thresholds")
    sub.add_argument("--part", choices=["test", "valid"], default="test",
                     help="films to predict: test (a submission, default) or valid")

    sub = command("search", cmd_search, "random search over learning rate and dropout")
    sub.add_argument("--name", default="search", help="search name (default: %(default)s)")
    sub.add_argument("--trials", type=int, default=8)
    sub.add_argument("--trial-epochs", type=int, default=5)
    sub.add_argument("--lr-range", type=float, nargs=2, default=[1e-4, 1e-2],
                     metavar=("LOW", "HIGH"))
    sub.add_argument("--search-seed", type=_integer, default=0)
    add_train_arguments(sub)

    sub = command("compare", cmd_compare,
                  "train one model per balancing strategy, score all, write a comparison report")
    sub.add_argument("--strategies", nargs="+",
                     help="none min-per-genre class-weight sampler asymmetric-loss (default: all)")
    sub.add_argument("--submissions", default="submissions")
    sub.add_argument("--prefix", default="compare", help="run and submission name prefix")
    sub.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    add_train_arguments(sub)
    add_scheduler_argument(sub)

    sub = command("baseline", cmd_baseline, "the whole baseline: data to score")
    sub.add_argument("--baseline", default="lenet", help="baseline name or TOML file")
    sub.add_argument("--data", help="data folder (default: synthetic posters)")
    sub.add_argument("--films", type=int, default=3000, help="synthetic films (3000)")
    sub.add_argument("--seed", type=_integer, default=0)
    sub.add_argument("--epochs", type=int, help="override the baseline's epoch budget")
    sub.add_argument("--submissions", default="submissions")

    sub = command("audit", cmd_audit, "balancing audit: label distribution before/after")
    sub.add_argument("--competition", help="competition name (default: the latest)")
    sub.add_argument("--seed", type=_integer, default=0)
    add_balance_arguments(sub)
    add_hosted_commands(command, add_scheduler_argument)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except KitError as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
        for problem in getattr(error, "problems", []):
            console.print(f"  - {escape(problem)}", soft_wrap=True)
        return getattr(error, "exit_code", 2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; finished work is kept, re-run to resume[/]")
        return 130
    if result is not None:      # None: a torchrun rank other than 0, or a report already printed
        summary(f"kit {args.command}", result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
