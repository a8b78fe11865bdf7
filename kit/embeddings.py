"""Frozen-backbone embeddings of every poster of a store, cached on disk shard by shard.

Views of the tall poster: ``full`` (the whole poster), ``top``/``middle``/``bottom`` (square
crops), ``flip`` (the whole poster mirrored) and ``flip-top``/``flip-middle``/``flip-bottom``
(the crops mirrored); a film's embedding concatenates its views.
Each view has its own cache folder mirroring the store: ``emb-000000.npy`` (float16, one row per
store row) beside ``emb-000000.json`` (written last: its presence commits the shard). A re-run
embeds only what is missing, so an interrupted run resumes where it stopped and a new combination
of views reuses every view already embedded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from kit.console import track
from kit.errors import KitError
from kit.files import atomic_path, file_digest, read_json, write_json
from kit.models.preprocess import short_side_size
from kit.scheduler import run_jobs
from kit.store import Store, shard_name
from kit.train.config import VIEWS
from kit.train.precision import PRECISIONS, resolve_precision


def view(images: torch.Tensor, name: str) -> torch.Tensor:
    """One view of a (B, 3, H, W) batch of posters."""
    if name not in VIEWS:
        raise KitError(f"unknown view {name!r}; choose from {', '.join(VIEWS)}")
    mirrored, name = _unmirrored(name)
    if mirrored:
        images = images.flip(-1)
    if name == "full":
        return images
    height, width = images.shape[-2:]
    side = min(height, width)
    start = {"top": 0, "middle": (height - side) // 2, "bottom": height - side}[name]
    return images[..., start:start + side, (width - side) // 2:(width - side) // 2 + side]


def _unmirrored(name: str) -> tuple[bool, str]:
    """Whether view ``name`` is mirrored, and the view it mirrors (``flip-top``: True, top)."""
    if name.startswith("flip"):
        return True, name[len("flip-"):] or "full"
    return False, name


def mirror_view(name: str) -> str:
    """The view that shows ``name`` mirrored left to right (``top`` <-> ``flip-top``)."""
    mirrored, base = _unmirrored(name)
    if mirrored:
        return base
    return "flip" if base == "full" else f"flip-{base}"


@dataclass(frozen=True)
class Backbone:
    """What a cache holds the output of: a backbone (a Lite preset or ``timm:<name>``), its
    ``--pretrained`` weights, and where it is cut: with ``tuned_stages``, the maps its last
    stages take; with ``stage_features``, its features joined with its last stages' pooled
    outputs (kit.models.stages); with ``short_side``, what it sees of each view at that many
    pixels on the shorter side, aspect kept (kit.models.preprocess)."""
    name: str
    pretrained: str | None = None
    tuned_stages: int = 0
    stage_features: int = 0
    short_side: int = 0

    def extractor(self):
        from kit.models.pretrained import feature_extractor
        return feature_extractor(self.name, self.pretrained, self.tuned_stages,
                                 self.stage_features, self.short_side)


def cache_dir(store: Store, backbone: Backbone, view_name: str, precision: str) -> Path:
    """Folder of the embedding cache for a backbone (its weights named by the content of a
    ``--pretrained`` file, not its name), one view and a precision."""
    label = backbone.name.replace(":", "-").replace("/", "-")
    weights = f"-weights-{file_digest(backbone.pretrained)[:16]}" if backbone.pretrained else ""
    cut = f"-maps-{backbone.tuned_stages}" if backbone.tuned_stages else \
        f"-stages-{backbone.stage_features}" if backbone.stage_features else ""
    side = f"-side-{backbone.short_side}" if backbone.short_side else ""
    return store.dir / "embeddings" / f"{label}{weights}-{view_name}-{precision}{cut}{side}"


def check_settings(views: tuple[str, ...], precision: str) -> None:
    """KitError unless every view is known and the precision is bf16 or fp32."""
    for name in views:
        view(torch.zeros(1, 3, 8, 8), name)
    if not views:
        raise KitError("--views needs at least one view")
    if precision not in PRECISIONS or precision == "auto":
        raise KitError(f"unknown precision {precision!r}; choose from bf16, fp32")


class Embedder:
    """A frozen backbone that turns uint8 poster batches into embeddings of one view (maps, for
    a backbone cut for tuning)."""

    def __init__(self, backbone: Backbone, view_name: str = "full", precision: str = "bf16"):
        check_settings((view_name,), precision)
        self.view, self.precision = view_name, precision
        self.model = backbone.extractor()
        self.model.network.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.array(images))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            pixels = self.model.preprocess(view(batch, self.view))
            features = self.model.network(pixels)
        return features.float().numpy().astype(np.float16)


MAX_BATCH_PIXELS = 64 * 512 * 512


def images_per_batch(batch_size: int, short_side: int, poster_size: tuple[int, int]) -> int:
    """How many posters an embedding batch holds: ``batch_size``, or fewer when ``short_side``
    makes them so large that the batch would exceed ``MAX_BATCH_PIXELS`` (64 images of 512x512,
    about 4 GB of Lite2 activations per worker), so that memory stays bounded whatever
    ``--short-side`` asks (the full poster is the largest view)."""
    if not short_side:
        return batch_size
    height, width = short_side_size(*poster_size, short_side)
    return max(1, min(batch_size, MAX_BATCH_PIXELS // (height * width)))


def _shard_digest(store: Store, shard: int) -> str:
    rows = store.index[store.index["shard"] == shard].sort_values("row")
    return hashlib.sha256("\n".join(rows["checksum"]).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EmbedJob:
    """One store shard to embed into the cache folder ``out``."""
    store_dir: str
    shard: int
    digest: str
    backbone: Backbone
    view: str
    precision: str
    out: str
    batch_size: int


@lru_cache(maxsize=2)
def _embedder(backbone: Backbone, view_name: str, precision: str) -> Embedder:
    """One backbone per worker process and view, loaded on its first shard."""
    return Embedder(backbone, view_name, precision)


def embed_shard(job: EmbedJob) -> int:
    """Embed every row of one store shard and commit it to the cache; returns the row count."""
    embedder = _embedder(job.backbone, job.view, job.precision)
    pixels = np.load(Path(job.store_dir) / f"{shard_name(job.shard)}.npy", mmap_mode="r")
    parts = [embedder(pixels[start:start + job.batch_size])
             for start in range(0, len(pixels), job.batch_size)]
    shape = list(parts[0].shape[1:]) if parts else None         # of maps before flattening
    features = np.concatenate([part.reshape(len(part), -1) for part in parts]) if parts \
        else np.zeros((0, 0), np.float16)
    base = Path(job.out) / f"emb-{shard_name(job.shard)[len('shard-'):]}"
    with atomic_path(base.with_suffix(".npy")) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, features)
    write_json(base.with_suffix(".json"), {"shard": job.shard, "rows": len(features),
                                           "digest": job.digest,
                                           "shape": shape})
    return len(features)


def embedding_jobs(store: Store, backbone: Backbone, views: tuple[str, ...], precision: str,
                   batch_size: int) -> tuple[list[Path], list[EmbedJob]]:
    """The cache folder of each view (created, stray temporary files removed) and a job for each
    shard a folder does not hold yet, its batches capped by ``images_per_batch``."""
    shards = sorted(int(s) for s in store.index["shard"].unique())
    digests = {s: _shard_digest(store, s) for s in shards}
    batch_size = images_per_batch(batch_size, backbone.short_side, store.size)
    folders, jobs = [], []
    for name in views:
        out = cache_dir(store, backbone, name, precision)
        out.mkdir(parents=True, exist_ok=True)
        for stray in out.glob(".emb-*.tmp"):
            stray.unlink(missing_ok=True)
        folders.append(out)
        jobs += [EmbedJob(str(store.dir), s, digests[s], backbone, name, precision, str(out),
                          batch_size)
                 for s in shards if not _committed(out, s, digests[s])]
    return folders, jobs


def embed_store(store: Store, backbone: Backbone, views: tuple[str, ...] = ("full",),
                precision: str = "auto", batch_size: int = 64, scheduler: str = "auto",
                workers: int | None = None) -> "EmbeddingCache":
    """Embed every store shard the index uses that the cache does not hold yet; resumable.

    Shards run as tasks on ``scheduler`` (kit.scheduler): a process pool of one worker per core
    by default, ``local`` for a Dask LocalCluster, ``tcp://host:port`` for an existing cluster,
    or inline. ``auto`` precision: bf16 where the CPU computes it natively, else fp32.
    """
    return embed_stores(store, [(backbone, tuple(views))], precision, batch_size, scheduler,
                        workers)[0]


def embed_stores(store: Store, requests: list[tuple[Backbone, tuple[str, ...]]],
                 precision: str = "auto", batch_size: int = 64, scheduler: str = "auto",
                 workers: int | None = None) -> list["EmbeddingCache"]:
    """``embed_store`` for several backbones and view sets at once, one cache each: their
    missing shards share one pool, whose workers start (and import torch) once, not once per
    view (on a 240-poster store that start cost more than the embedding)."""
    precision = resolve_precision(precision)
    folders_of, jobs = [], []
    for backbone, views in requests:
        check_settings(tuple(views), precision)
        folders, missing = embedding_jobs(store, backbone, tuple(views), precision, batch_size)
        folders_of.append(folders)
        jobs += missing
    if jobs:
        names = list(dict.fromkeys(job.backbone for job in jobs))
        for backbone in names:
            backbone.extractor()                # fail fast, before any worker starts
        total = int(sum(len(store.shard(job.shard)) for job in jobs))
        label = ", ".join(dict.fromkeys(backbone.name for backbone in names))
        for _ in track(run_jobs(embed_shard, jobs, scheduler, workers), total,
                       f"embedding with {label}", "posters", size=int):
            pass
    return [EmbeddingCache(store, folders) for folders in folders_of]


def _committed(out: Path, shard: int, digest: str) -> bool:
    meta = out / f"emb-{shard_name(shard)[len('shard-'):]}.json"
    return meta.exists() and read_json(meta)["digest"] == digest


class EmbeddingCache:
    """Read embeddings of store positions from committed caches, one folder per view."""

    def __init__(self, store: Store, folders: list[Path]):
        self.store, self.dirs = store, [Path(f) for f in folders]
        self._shards: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def joined(cls, caches: list["EmbeddingCache"]) -> "EmbeddingCache":
        """One cache whose features are those of ``caches`` side by side (same store)."""
        return cls(caches[0].store, [folder for cache in caches for folder in cache.dirs])

    def widths(self) -> list[int]:
        """The number of features each folder (view) adds to a row of ``features``."""
        first_shard = int(self.store.index["shard"].iloc[0])
        return [self._shard(index, first_shard).shape[1] for index in range(len(self.dirs))]

    def row_shape(self) -> list[int]:
        """The shape of one view's rows before they were flattened ([F] for pooled features,
        [C, H, W] for maps), as the first committed shard records it."""
        first = min(self.dirs[0].glob("emb-*.json"), default=None)
        shape = read_json(first).get("shape") if first else None
        if not shape:
            raise KitError(f"embedding cache {self.dirs[0]} does not record its maps' shape; "
                           "delete the folder to embed it again")
        return shape

    def _shard(self, view_index: int, shard: int) -> np.ndarray:
        if (view_index, shard) not in self._shards:
            folder = self.dirs[view_index]
            path = folder / f"emb-{shard_name(shard)[len('shard-'):]}.npy"
            if not path.exists():
                raise KitError(f"embedding cache {folder} lacks shard {shard}; re-run training "
                               "to embed it")
            self._shards[view_index, shard] = np.load(path, mmap_mode="r")
        return self._shards[view_index, shard]

    def features(self, positions: np.ndarray) -> np.ndarray:
        """float16 embeddings of the given store positions, in that order, views side by side."""
        shards = self.store.index["shard"].to_numpy()[positions]
        rows = self.store.index["row"].to_numpy()[positions]
        blocks = []
        for view_index in range(len(self.dirs)):
            out = None
            for shard in np.unique(shards):
                mask = shards == shard
                block = self._shard(view_index, int(shard))[rows[mask]]
                if out is None:
                    out = np.empty((len(positions), block.shape[1]), np.float16)
                out[mask] = block
            blocks.append(out if out is not None else np.zeros((0, 0), np.float16))
        return np.concatenate(blocks, axis=1)
