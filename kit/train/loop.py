"""`kit train`: one readable training loop (after torchvision's reference scripts).

Reads only the competition's ``public/`` folder. Every epoch is seeded from (seed, epoch), and
``last.pt`` is written atomically after each epoch, so a run killed at any point and resumed with
``--resume`` reaches the same weights as an uninterrupted run. Data-parallel under torchrun
(gloo on the CPU): each process draws its slice of the same seeded epoch order.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from eval.metrics import f1_micro_macro
from kit.competition import Competition
from kit.console import console, track
from kit.files import write_json
from kit.losses import make_loss
from kit.memory import keep_freed_memory
from kit.train.checkpoint import (build_model, load_weights, read_checkpoint,
                                  write_checkpoint)
from kit.train.config import TrainConfig
from kit.train.data import EpochSampler, PosterDataset, RunData, prepare_data
from kit.train.distributed import (Distributed, barrier, epoch_seed, run_seed, seed_everything,
                                   start_distributed)
from kit.train.inference import as_model_input, predict_probabilities
from kit.train.log import draw_genre_scores, print_history, write_log
from kit.train.run_folder import check_new_run, check_resumable, claim_run, run_identity
from kit.train.thresholds import decision_thresholds

CURVES_EVERY_SECONDS = 30      # redrawing curves.png each epoch took a third of a head's run
# At most this share of the training time goes to writing last.pt (and the best.pt waiting to be
# written with it): a frozen head's epoch takes about ten times as long as writing its 24 MB
# checkpoint. A killed run replays the epochs after its last checkpoint, each seeded from its
# number, to the same weights.
CHECKPOINT_SHARE = 0.03
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimiser over the trainable parameters, the tuned stages of a backbone
    (``encoder``) at ``backbone_lr``; Adam and AdamW run fused (one kernel for every
    parameter: half the step time of a frozen-feature head on a CPU)."""
    options = {"fused": True} if config.optimizer in ("adam", "adamw") else {}
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for name, p in trainable if not name.startswith("encoder.")],
               "lr": config.lr},
              {"params": [p for name, p in trainable if name.startswith("encoder.")],
               "lr": config.backbone_lr}]
    return OPTIMIZERS[config.optimizer]([group for group in groups if group["params"]],
                                        lr=config.lr, weight_decay=config.weight_decay,
                                        **options)


def init_output_bias(model: nn.Module, prevalence: np.ndarray) -> None:
    """Start the output layer at the training prior's log-odds, so epoch 1 begins at the prior's
    loss instead of spending thousands of steps pulling every genre's bias down from 0."""
    output = [m for m in model.modules() if isinstance(m, nn.Linear)
              and m.out_features == len(prevalence) and m.bias is not None][-1]
    odds = np.clip(prevalence, 1e-4, 1 - 1e-4)
    with torch.no_grad():
        output.bias.copy_(torch.from_numpy(np.log(odds / (1 - odds)).astype(np.float32)))


def running(state: dict, config: TrainConfig) -> bool:
    """Whether a run has epochs left: fewer than ``epochs`` done, and not stopped early."""
    return state["epoch"] < config.epochs and state["bad_epochs"] < config.patience


def training_threads(config: TrainConfig, world: int) -> int:
    """One thread for a head on frozen features, wherever it trains (side by side, in turn,
    under torchrun): a matrix product split over two threads sums in another order, so its
    weights would depend on how it was scheduled (they did, on an Intel Xeon), and its small
    matrices leave a second thread mostly idle. Anything else: the cores, shared among
    torchrun's processes."""
    if config.frozen and not config.tuned_stages:
        return 1
    return max(1, (os.cpu_count() or 1) // world)


def train_run(config: TrainConfig, competition: Competition, run_dir: Path, run_name: str,
              resume: bool = False, scheduler: str = "auto", fold: int | None = None
              ) -> dict | None:
    """The training loop of one model in ``run_dir`` (``fold``: see ``prepare_data``)."""
    process = start_distributed()
    with claim_run(run_dir, run_name, process):
        check_new_run(run_dir, run_name, resume)
        return _train_model(config, competition, run_dir, run_name, resume, scheduler, fold,
                            process)


def _train_model(config: TrainConfig, competition: Competition, run_dir: Path, run_name: str,
                 resume: bool, scheduler: str, fold: int | None, process: Distributed
                 ) -> dict | None:
    """``train_run``'s work, once it holds the run's folder."""
    torch.set_num_threads(training_threads(config, process.world))
    seed = run_seed(config.seed, fold)
    data = prepare_data(config, competition, scheduler, fold)
    seed_everything(seed)     # after any embedding, whose backbone draws random initial weights
    model = build_model(config, len(data.genres), data.trained_options)
    init_output_bias(model, data.train_labels.mean(0, dtype=np.float64))
    criterion = make_loss(config.loss, data.plan.pos_weight)
    optimizer = make_optimizer(config, model)
    state = {"epoch": 0, "best_loss": math.inf, "bad_epochs": 0, "history": []}
    identity = run_identity(config, competition, run_name, data)
    if resume and (run_dir / "last.pt").exists():
        checkpoint = read_checkpoint(run_dir / "last.pt", f"run {run_name!r}")
        check_resumable(checkpoint, identity, run_name)
        load_weights(model, checkpoint["model_state"], f"run {run_name!r}")
        optimizer.load_state_dict(checkpoint["optimizer_state"])
        state = checkpoint["state"]
        if process.main:
            console.print(f"resuming {run_name} after epoch {state['epoch']}")
    network = nn.parallel.DistributedDataParallel(model) if process.world > 1 else model
    sampler = EpochSampler(len(data.train), seed, data.plan.sample_weights, process.rank,
                           process.world)
    train_loader = DataLoader(data.train, batch_size=config.batch_size, sampler=sampler,
                              num_workers=config.workers, persistent_workers=config.workers > 0)
    valid_loader = DataLoader(data.valid, batch_size=max(64, config.batch_size),
                              num_workers=config.workers)
    if process.main:
        write_json(run_dir / "config.json", asdict(config))
        for note in data.plan.notes:
            console.print(note, style="yellow")
    curves_drawn = time.monotonic()
    saved_at, save_seconds, best = -math.inf, 0.0, None
    while running(state, config):
        epoch = state["epoch"]
        sampler.set_epoch(epoch)
        if isinstance(data.train, PosterDataset):
            data.train.set_epoch(epoch)
        torch.manual_seed(epoch_seed(seed, epoch * 101) + process.rank)
        started = time.perf_counter()
        train_loss = train_one_epoch(network, criterion, optimizer, train_loader,
                                     f"epoch {epoch + 1}/{config.epochs}", process,
                                     bf16=config.bf16_training, mixup=config.mixup,
                                     label_smoothing=config.label_smoothing)
        seconds = time.perf_counter() - started
        valid = evaluate(model, valid_loader, criterion, data.valid_labels)
        improved = valid["loss"] < state["best_loss"] - 1e-6
        state["best_loss"] = min(state["best_loss"], valid["loss"])
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        state["epoch"] = epoch + 1
        state["history"].append({
            "epoch": epoch + 1, "train_loss": train_loss, "valid_loss": valid["loss"],
            "valid_f1_micro": valid["f1_micro"], "valid_f1_macro": valid["f1_macro"],
            "seconds": round(seconds, 2),
            "images_per_second": round(len(sampler) * process.world / seconds, 1)})
        if process.main:
            console.print(f"epoch {epoch + 1}: train loss {train_loss:.4f}, valid loss "
                          f"{valid['loss']:.4f}, valid F1 micro {valid['f1_micro']:.3f} macro "
                          f"{valid['f1_macro']:.3f}{' (best)' if improved else ''}")
            if improved:
                best = {"model_state": {name: tensor.detach().clone()
                                        for name, tensor in model.state_dict().items()},
                        "epoch": epoch + 1}
            due = time.monotonic() - saved_at >= save_seconds / CHECKPOINT_SHARE
            if not running(state, config) or due:
                started = time.monotonic()
                if best:        # first, so that last.pt never counts a best that is not on disk
                    write_checkpoint(run_dir / "best.pt", **identity, **best)
                    best = None
                write_checkpoint(run_dir / "last.pt", **identity,
                                 model_state=model.state_dict(),
                                 optimizer_state=optimizer.state_dict(), state=state)
                saved_at = time.monotonic()
                save_seconds = saved_at - started
            redraw = fold is None and time.monotonic() - curves_drawn >= CURVES_EVERY_SECONDS
            write_log(run_dir, state["history"], curves=redraw)   # and at the end, always
            curves_drawn = time.monotonic() if redraw else curves_drawn
    barrier(process)        # rank 0's last checkpoint is on disk before anyone moves on
    summary = tune_best_model(config, run_dir, run_name, model, valid_loader, data, state,
                              own_figures=fold is None) if process.main else None
    barrier(process)
    return summary


def train_one_epoch(network, criterion, optimizer, loader, description: str,
                    process: Distributed = Distributed(), bf16: bool = False,
                    mixup: float = 0.0, label_smoothing: float = 0.0) -> float:
    """One pass over ``loader``; returns the mean training loss (over this process's batches).

    ``bf16`` runs the forward pass under bfloat16 autocast (weights, loss and optimiser stay
    float32), faster on CPUs with native bf16 (AVX512-BF16, AMX). ``mixup`` > 0 mixes each
    batch of features with a shuffled copy of itself (``mixed``); ``label_smoothing`` s > 0
    trains towards y (1 - s) + s / 2 instead of the labels y.
    """
    keep_freed_memory()
    network.train()
    total, count = 0.0, 0
    batches = track(loader, len(loader.sampler), description, "img", size=lambda b: len(b[0]),
                    scale=process.world, transient=True)
    mix_weights = torch.distributions.Beta(mixup, mixup) if mixup else None
    for inputs, targets in batches:
        inputs, targets = as_model_input(inputs), targets.float()
        if mix_weights is not None:
            inputs, targets = mixed(inputs, targets, mix_weights)
        if label_smoothing:
            targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = network(inputs)
        loss = criterion(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(inputs)
        count += len(inputs)
    return total / max(count, 1)


def mixed(inputs: torch.Tensor, targets: torch.Tensor, mix_weights: torch.distributions.Beta
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018) of a batch of features: each row becomes ``w`` x itself +
    (1 - ``w``) x another row of the batch, its labels alike, ``w`` drawn from ``mix_weights``,
    Beta(alpha, alpha), with torch's generator (so a seeded epoch draws the same)."""
    weight = mix_weights.sample().item()
    partners = torch.randperm(len(inputs))
    return (weight * inputs + (1 - weight) * inputs[partners],
            weight * targets + (1 - weight) * targets[partners])


def evaluate(model: nn.Module, loader: DataLoader, criterion: nn.Module, labels: np.ndarray
             ) -> dict:
    """Validation loss and micro/macro F1 at 0.5, plus the probabilities."""
    probabilities, logits = predict_probabilities(model, loader)
    loss = float(criterion(logits, torch.from_numpy(labels.astype(np.float32))))
    micro, macro = f1_micro_macro(labels, probabilities >= 0.5)
    return {"loss": loss, "probabilities": probabilities, "f1_micro": micro, "f1_macro": macro}


def tune_best_model(config: TrainConfig, run_dir: Path, run_name: str, model: nn.Module,
                    valid_loader, data: RunData, state: dict, own_figures: bool) -> dict:
    """Reload the best weights, tune per-genre thresholds on valid, save them with the model
    and the valid predictions (with their films' ids, which a cross-fitted run pools by); a run
    of its own (``own_figures``, not a fold of a cross-fitted one, whose run draws its members'
    curves in one figure) draws ``curves.png`` and ``genres.png``."""
    valid_labels, genres = data.valid_labels, data.genres
    best = read_checkpoint(run_dir / "best.pt", f"run {run_name!r}")
    load_weights(model, best["model_state"], f"run {run_name!r}")
    probabilities, _ = predict_probabilities(model, valid_loader)
    thresholds = decision_thresholds(config.tune_thresholds, probabilities, valid_labels,
                                     config.micro_weight, config.threshold_grid)
    micro, macro = f1_micro_macro(valid_labels, probabilities >= thresholds)
    summary = {"run": run_name, "epochs_run": state["epoch"], "best_epoch": best["epoch"],
               "best_valid_loss": round(state["best_loss"], 5),
               "valid_f1_micro_tuned": micro, "valid_f1_macro_tuned": macro,
               "stopped_early": state["bad_epochs"] >= config.patience,
               "run_dir": str(run_dir)}
    write_checkpoint(run_dir / "best.pt", config, best["genres"], best["competition"],
                     best["data_options"], best["run"], best["model_state"],
                     epoch=best["epoch"], thresholds=thresholds.tolist(),
                     valid={"probabilities": probabilities, "labels": valid_labels,
                            "ids": data.valid_ids})
    if state["history"]:
        write_log(run_dir, state["history"], curves=own_figures)
        print_history(run_dir.name, state["history"])
    write_json(run_dir / "thresholds.json", dict(zip(genres, thresholds.tolist())))
    if own_figures:
        draw_genre_scores(run_dir, genres, valid_labels, probabilities, thresholds, "valid",
                          config.tune_thresholds)
    write_json(run_dir / "summary.json", summary)
    return summary
