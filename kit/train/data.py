"""What a run trains on: the balanced training and valid sets from ``public/``, as uint8
posters from the store or as cached frozen-backbone embeddings, and the seeded epoch order."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, TensorDataset

from kit import balancing
from kit.competition import Competition
from kit.embeddings import Backbone, EmbeddingCache, embed_stores, mirror_view
from kit.splits import stratified_folds
from kit.train.config import TrainConfig
from kit.train.precision import resolve_precision
from kit.train.distributed import epoch_seed, run_seed


class EpochSampler(Sampler):
    """Seeded epoch order over ``count`` rows (weighted draws when ``weights`` are given),
    padded and sliced so that each of ``world`` processes gets a disjoint equal share."""

    def __init__(self, count: int, seed: int, weights=None, rank: int = 0, world: int = 1):
        self.count, self.seed, self.rank, self.world = count, seed, rank, world
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.count / self.world)

    def __iter__(self):
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        if self.weights is None:
            order = torch.randperm(self.count, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.count, replacement=True,
                                      generator=generator)
        order = order.tolist()
        order += order[:len(self) * self.world - len(order)]
        return iter(order[self.rank::self.world])


class PosterDataset(Dataset):
    """uint8 posters from the store with their labels; optional albumentations augmentation,
    seeded per (seed, epoch, poster) so that it is the same however the run is resumed."""

    def __init__(self, store, positions: np.ndarray, labels: np.ndarray, augment: bool = False,
                 seed: int = 0):
        self.store, self.positions, self.labels = store, positions, labels
        self.augment = _augmentation() if augment else None
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int):
        image = np.array(self.store[int(self.positions[item])])
        if self.augment is not None:
            self.augment.set_random_seed(epoch_seed(self.seed, self.epoch) * 1_000_003 + item)
            image = self.augment(image=image.transpose(1, 2, 0))["image"].transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(self.labels[item])


def _augmentation():
    import albumentations as A
    return A.Compose([A.HorizontalFlip(p=0.5),
                      A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), p=0.5),
                      A.ColorJitter(0.2, 0.2, 0.2, 0.02, p=0.5)])


@dataclass
class RunData:
    """The datasets of one run and what the model needs to know about its inputs."""
    genres: list[str]
    plan: balancing.BalancePlan
    train: Dataset
    valid: Dataset
    train_labels: np.ndarray
    valid_labels: np.ndarray
    valid_ids: np.ndarray
    data_options: dict

    @property
    def trained_options(self) -> dict:
        """``data_options`` for the model trained here: the datasets hold a head's columns
        already (the saved model, with ``columns``, reads them out of joined rows)."""
        return {name: value for name, value in self.data_options.items() if name != "columns"}


def balance_for(config: TrainConfig, train_labels: np.ndarray, valid_labels: np.ndarray,
                genres: list[str], seed: int) -> balancing.BalancePlan:
    """The balancing plan ``config`` asks for on these labels."""
    return balancing.plan(config.balance, train_labels, valid_labels, seed,
                          min_count=config.min_count, target_size=config.target_size,
                          weight_cap=config.weight_cap, genres=genres)


def embed_for(config: TrainConfig, store, scheduler: str = "auto", pooled: bool = False):
    """The frozen backbones' embedding cache for every poster of the store (built if missing):
    the model's views, then those of each joined backbone, side by side; with ``mirror``, the
    same again for the mirrored views. With ``tuned_stages``, the maps those stages take, or
    with ``pooled`` the pooled features all the same; both are embedded together."""
    wanted = embedding_requests(config, pooled)
    others = embedding_requests(config, not pooled) if config.tuned_stages else []
    caches = embed_stores(store, wanted + others, resolve_precision(config.precision),
                          scheduler=scheduler)[:len(wanted)]
    return caches[0] if len(caches) == 1 else EmbeddingCache.joined(caches)


def embedding_requests(config: TrainConfig, pooled: bool) -> list[tuple[Backbone, tuple]]:
    """Each backbone of ``config`` with each of its view sets, in the order their features are
    joined (views, then mirrored views)."""
    view_sets = [tuple(config.views)]
    if config.mirror:
        view_sets.append(tuple(mirror_view(name) for name in config.views))
    backbones = [Backbone(name, config.pretrained if name == config.model else None,
                          0 if pooled else config.tuned_stages, config.stage_features,
                          config.short_side)
                 for name in config.backbones]
    return [(backbone, views) for views in view_sets for backbone in backbones]


def backbone_columns(config: TrainConfig, cache: EmbeddingCache) -> tuple[int, int]:
    """Where ``config.head_backbone``'s features lie in each (film or mirror) half of the
    joined rows ``embed_for`` gives: its views' columns, after those of the backbones before it."""
    widths, views = cache.widths(), len(config.views)
    sizes = [sum(widths[i * views:(i + 1) * views]) for i in range(len(config.backbones))]
    index = config.backbones.index(config.head_backbone)
    return sum(sizes[:index]), sum(sizes[:index + 1])


def head_columns(features: torch.Tensor, columns: tuple[int, int] | None,
                 mirror: bool) -> torch.Tensor:
    """The columns a head reads of each half (film, mirror image) of the rows (all: None)."""
    if columns is None:
        return features
    halves = features.unflatten(1, (2 if mirror else 1, -1))
    return halves[..., columns[0]:columns[1]].flatten(1)


def feature_scaling(train_x: torch.Tensor, mirror: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the training features, for the frozen head's standardisation (with
    ``mirror``, of the films and their mirror images, the two halves of each row, together).

    A feature (nearly) constant on the training films, as many are on a training set smaller
    than the feature count, teaches the head nothing but may vary on other films; a std clamped
    near zero turned that into z-scores of 100,000 on valid films. Such a feature gets a std far
    above the typical one, so it stays near zero everywhere."""
    values = train_x.float()
    if mirror:
        values = values.unflatten(1, (2, -1)).flatten(0, 1)
    mean, std = values.mean(0), values.std(0)          # one film: std is NaN, so constant
    spread = std[std > 0]
    typical = float(spread.median()) if len(spread) else 1.0
    return mean, torch.where(std > 1e-3 * typical, std, torch.full_like(std, 1e6 * typical))


def prepare_data(config: TrainConfig, competition: Competition, scheduler: str = "auto",
                 fold: int | None = None) -> RunData:
    """Labels, balancing plan and datasets for train and valid, read from ``public/`` only.
    With ``fold``, train+valid are pooled and that fold of ``config.folds`` is the valid part."""
    genres = competition.genres()
    parts = competition.labelled_parts()
    if fold is not None:
        pooled_ids = np.concatenate([parts["train"].ids, parts["valid"].ids])
        pooled = np.concatenate([parts["train"].labels, parts["valid"].labels])
        in_valid = stratified_folds(pooled, config.folds, config.seed) == fold
        train_ids, train_labels = pooled_ids[~in_valid], pooled[~in_valid]
        valid_ids, valid_labels = pooled_ids[in_valid], pooled[in_valid]
    else:
        train_ids, train_labels = parts["train"].ids, parts["train"].labels
        valid_ids, valid_labels = parts["valid"].ids, parts["valid"].labels
    seed = run_seed(config.seed, fold)
    plan = balance_for(config, train_labels, valid_labels, genres, seed)
    store = competition.store()
    train_positions = store.positions(train_ids[plan.train_rows])
    valid_positions = store.positions(valid_ids[plan.valid_rows])
    train_y, valid_y = train_labels[plan.train_rows], valid_labels[plan.valid_rows]
    if config.frozen:
        cache = embed_for(config, store, scheduler)
        train_x = torch.from_numpy(cache.features(train_positions))
        valid_x = torch.from_numpy(cache.features(valid_positions))
        if config.tuned_stages:     # standardised as the untuned stages' features are
            pooled = torch.from_numpy(embed_for(config, store, scheduler, pooled=True)
                                      .features(train_positions))
            mean, std = feature_scaling(pooled, config.mirror)
            data_options = {"map_shape": cache.row_shape()}
        else:       # a head of one backbone trains on its columns alone: a third of the copying
            columns = backbone_columns(config, cache) if config.head_backbone else None
            train_x, valid_x = (head_columns(x, columns, config.mirror).contiguous()
                                for x in (train_x, valid_x))
            mean, std = feature_scaling(train_x, config.mirror)
            data_options = {"columns": list(columns)} if columns else {}
        data_options.update(in_features=len(mean), mean=mean.tolist(), std=std.tolist())
        train_set = TensorDataset(train_x, torch.from_numpy(train_y))
        valid_set = TensorDataset(valid_x, torch.from_numpy(valid_y))
    else:
        train_set = PosterDataset(store, train_positions, train_y, config.augment, seed)
        valid_set = PosterDataset(store, valid_positions, valid_y)
        stats = competition.normalisation()
        data_options = {"input_size": list(store.size), "mean": stats["mean"],
                        "std": stats["std"]}
    return RunData(genres, plan, train_set, valid_set, train_y, valid_y,
                   valid_ids[plan.valid_rows], data_options)
