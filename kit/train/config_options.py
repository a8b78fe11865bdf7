"""The command line of a TrainConfig: one option per field, parsed and checked as the field is."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

from kit.errors import KitError
from kit.train.config import TrainConfig, base_type, check_value, field_types


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One command-line option per TrainConfig field (unset: the file's or default value)."""
    types = field_types()
    for spec in fields(TrainConfig):
        meta = spec.metadata
        flags = meta["flag"] or (f"--{spec.name.replace('_', '-')}",)
        default = spec.default if spec.default is not MISSING else spec.default_factory()
        help = f"{meta['help']} (default: {default})"
        base = base_type(types[spec.name])
        if base is bool:
            parser.add_argument(*flags, dest=spec.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help)
        elif base is tuple:
            parser.add_argument(*flags, dest=spec.name, nargs="+", default=None,
                                choices=meta["choices"], help=help)
        else:
            parser.add_argument(*flags, dest=spec.name, type=_parser_for(spec, base),
                                default=None, help=help, metavar=spec.name.upper())


def _parser_for(spec, base):
    def parse(text: str):
        try:
            value = base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {base.__name__}, got {text!r}")
        try:
            return check_value(spec, value, "the command line")
        except KitError as error:
            raise argparse.ArgumentTypeError(str(error))
    return parse


def given_options(args: argparse.Namespace) -> dict:
    """The TrainConfig options set on the command line."""
    return {spec.name: getattr(args, spec.name) for spec in fields(TrainConfig)
            if getattr(args, spec.name, None) is not None}
