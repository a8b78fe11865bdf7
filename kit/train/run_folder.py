"""A run's folder: what its checkpoints record of what made them, and who may write it (a new
run, or one resumed with the same settings, by one process at a time)."""
from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path

from kit.competition import Competition
from kit.errors import KitError
from kit.files import exclusive_lock, file_digest
from kit.train.config import RESUMABLE_CHANGES, TrainConfig
from kit.train.distributed import Distributed


def _as_listed(value):
    """Settings compared across a checkpoint round trip (tuples come back as lists)."""
    return list(value) if isinstance(value, tuple) else value


def run_identity(config: TrainConfig, competition: Competition, run_name: str, data) -> dict:
    """What a run's checkpoints record of what made them: resuming requires the same."""
    return dict(config=config, genres=data.genres, competition=competition.name,
                data_options=data.data_options, run=run_name,
                pretrained_digest=file_digest(config.pretrained) if config.pretrained else None)


# The way out when a run of that name exists: kit compare names its runs after --prefix.
ANOTHER_NAME = "use another --name (kit compare: another --prefix)"


def check_resumable(checkpoint: dict, identity: dict, run_name: str) -> None:
    """Resuming what another competition, other weights or other settings made is refused,
    naming what differs."""
    if checkpoint.get("competition") != identity["competition"]:
        raise KitError(f"run {run_name!r} was trained on competition "
                       f"{checkpoint.get('competition')!r}, not on {identity['competition']!r}; "
                       "resuming would mix them (its valid films may be test films here): "
                       f"{ANOTHER_NAME}, or --competition to pick its own")
    if checkpoint.get("pretrained_digest") != identity["pretrained_digest"]:
        raise KitError(f"run {run_name!r} started from other --pretrained weights (the file's "
                       f"content changed); {ANOTHER_NAME}")
    config = identity["config"]
    now = asdict(config)
    changed = {k: (v, now[k]) for k, v in checkpoint["config"].items()
               if k not in RESUMABLE_CHANGES and _as_listed(v) != _as_listed(now[k])}
    if changed:
        raise KitError(f"run {run_name!r} was trained with other settings; resuming would mix "
                       "them (" + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in
                                            changed.items()) + f"); {ANOTHER_NAME}")


def check_new_run(run_dir: Path, run_name: str, resume: bool) -> None:
    """A run that exists is continued only with ``resume``."""
    if (run_dir / "last.pt").exists() and not resume:
        raise KitError(f"run {run_name!r} exists in {run_dir.parent}; pass --resume to continue "
                       "it or choose another --name")


def claim_run(run_dir: Path, run_name: str, process: Distributed):
    """Hold ``run_dir`` while this process trains it (rank 0 for all torchrun ranks): a second
    `kit train` of the same run at once would mix both runs' logs and checkpoints."""
    if not process.main:
        return contextlib.nullcontext()
    return exclusive_lock(run_dir / ".lock", f"kit train of run {run_name!r}")
