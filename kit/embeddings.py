"""Frozen-backbone embeddings of every poster of a store, cached on disk shard by shard.

The cache mirrors the store: ``emb-000000.npy`` (float16, one row per store row) beside
``emb-000000.json`` (written last: its presence commits the shard). A re-run embeds only the store
shards that have no committed embedding shard, so an interrupted run resumes where it stopped.
Views of the tall poster: ``full`` (the whole poster), ``top``/``middle``/``bottom`` (square
crops) and ``flip`` (the whole poster mirrored); a film's embedding concatenates its views.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch

from kit.console import progress
from kit.errors import KitError
from kit.files import atomic_path, read_json, write_json
from kit.store import Store, shard_name

VIEWS = ("full", "top", "middle", "bottom", "flip")
PRECISIONS = ("bf16", "fp32")


def view(images: torch.Tensor, name: str) -> torch.Tensor:
    """One view of a (B, 3, H, W) batch of posters."""
    height, width = images.shape[-2:]
    side = min(height, width)
    if name == "full":
        return images
    if name == "flip":
        return images.flip(-1)
    start = {"top": 0, "middle": (height - side) // 2, "bottom": height - side}.get(name)
    if start is None:
        raise KitError(f"unknown view {name!r}; choose from {', '.join(VIEWS)}")
    return images[..., start:start + side, (width - side) // 2:(width - side) // 2 + side]


def cache_dir(store: Store, backbone: str, views: tuple[str, ...], precision: str) -> Path:
    """Folder of the embedding cache for a backbone, views and precision."""
    label = backbone.replace(":", "-").replace("/", "-")
    return store.dir / "embeddings" / f"{label}-{'+'.join(views)}-{precision}"


class Embedder:
    """A frozen backbone that turns uint8 poster batches into concatenated view embeddings."""

    def __init__(self, backbone: str, views: tuple[str, ...] = ("full",), precision: str = "bf16",
                 pretrained: str | None = None):
        from kit.models.pretrained import feature_extractor
        for name in views:
            view(torch.zeros(1, 3, 8, 8), name)
        if precision not in PRECISIONS:
            raise KitError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        self.views, self.precision = tuple(views), precision
        self.model = feature_extractor(backbone, pretrained)
        self.model.network.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255)
        outputs = []
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            for name in self.views:
                pixels = self.model.preprocess(view(batch, name))
                outputs.append(self.model.network(pixels.contiguous(
                    memory_format=torch.channels_last)).float())
        return torch.cat(outputs, 1).numpy().astype(np.float16)


def _shard_digest(store: Store, shard: int) -> str:
    rows = store.index[store.index["shard"] == shard].sort_values("row")
    return hashlib.sha256("\n".join(rows["checksum"]).encode()).hexdigest()[:16]


def embed_shard(store: Store, shard: int, embedder: Embedder, out: Path, batch_size: int,
                on_batch=None) -> None:
    """Embed every row of one store shard and commit it to the cache."""
    pixels = store.shard(shard)
    parts = []
    for start in range(0, len(pixels), batch_size):
        parts.append(embedder(pixels[start:start + batch_size]))
        if on_batch:
            on_batch(len(parts[-1]))
    features = np.concatenate(parts) if parts else np.zeros((0, 0), np.float16)
    base = out / f"emb-{shard_name(shard)[len('shard-'):]}"
    with atomic_path(base.with_suffix(".npy")) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, features)
    write_json(base.with_suffix(".json"), {"shard": shard, "rows": len(features),
                                           "digest": _shard_digest(store, shard)})


def embed_store(store: Store, backbone: str, views: tuple[str, ...] = ("full",),
                precision: str = "bf16", batch_size: int = 64, pretrained: str | None = None
                ) -> "EmbeddingCache":
    """Embed every store shard the index uses that the cache does not hold yet; resumable."""
    out = cache_dir(store, backbone, tuple(views), precision)
    out.mkdir(parents=True, exist_ok=True)
    for stray in out.glob(".emb-*.tmp"):
        stray.unlink(missing_ok=True)
    shards = sorted(int(s) for s in store.index["shard"].unique())
    pending = [s for s in shards if not _committed(store, out, s)]
    if pending:
        embedder = Embedder(backbone, tuple(views), precision, pretrained)
        total = int(sum(len(store.shard(s)) for s in pending))
        start, done = time.perf_counter(), 0
        with progress() as bar:
            task = bar.add_task(f"embedding with {backbone}", total=total, rate="")

            def advance(count):
                nonlocal done
                done += count
                rate = done / max(time.perf_counter() - start, 1e-9)
                bar.update(task, completed=done, rate=f"{rate:,.1f} posters/s")
            for shard in pending:
                embed_shard(store, shard, embedder, out, batch_size, advance)
    return EmbeddingCache(store, out)


def _committed(store: Store, out: Path, shard: int) -> bool:
    meta = out / f"emb-{shard_name(shard)[len('shard-'):]}.json"
    return meta.exists() and read_json(meta)["digest"] == _shard_digest(store, shard)


class EmbeddingCache:
    """Read embeddings of store positions from a committed cache."""

    def __init__(self, store: Store, folder: Path):
        self.store, self.dir = store, Path(folder)
        self._shards: dict[int, np.ndarray] = {}

    def _shard(self, shard: int) -> np.ndarray:
        if shard not in self._shards:
            path = self.dir / f"emb-{shard_name(shard)[len('shard-'):]}.npy"
            if not path.exists():
                raise KitError(f"embedding cache {self.dir} lacks shard {shard}; re-run training "
                               "to embed it")
            self._shards[shard] = np.load(path, mmap_mode="r")
        return self._shards[shard]

    def features(self, positions: np.ndarray) -> np.ndarray:
        """float32 embeddings of the given store positions, in that order."""
        shards = self.store.index["shard"].to_numpy()[positions]
        rows = self.store.index["row"].to_numpy()[positions]
        out = None
        for shard in np.unique(shards):
            mask = shards == shard
            block = self._shard(int(shard))[rows[mask]].astype(np.float32)
            if out is None:
                out = np.empty((len(positions), block.shape[1]), np.float32)
            out[mask] = block
        return out if out is not None else np.zeros((0, 0), np.float32)
