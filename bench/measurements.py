"""The measurements of `make bench`, each run in a fresh process by bench/run.py:
`python bench/measurements.py NAME ARGS...` prints one JSON line with its result."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def preprocess(source: str, out: str, scheduler: str) -> dict:
    from kit.ingest import build_catalogue, find_source
    from kit.store import build_store
    films = build_catalogue(find_source(source)).films
    started = time.perf_counter()
    result = build_store(films, source, out, scheduler=scheduler)
    seconds = time.perf_counter() - started
    return {"posters": result["stored"], "seconds": round(seconds, 2),
            "posters_per_second": round(result["stored"] / seconds, 1)}


def naive_preprocess(source: str) -> dict:
    """The report's way: open, convert and resize each poster with PIL, one at a time."""
    import numpy as np
    from PIL import Image
    from kit.ingest import build_catalogue, find_source
    films = build_catalogue(find_source(source)).films
    started = time.perf_counter()
    for poster in films["poster"]:
        image = Image.open(Path(source) / poster).convert("RGB").resize((230, 345))
        np.asarray(image)
    seconds = time.perf_counter() - started
    return {"posters": len(films), "seconds": round(seconds, 2),
            "posters_per_second": round(len(films) / seconds, 1)}


def lenet_throughput(workdir: str, mode: str, batches: int = 100) -> dict:
    """Images/s of the kit's LeNet training epoch (``kit.train.loop.train_one_epoch``, default
    precision) reading the uint8 store, or decoding and resizing each JPEG every time."""
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from kit.competition import Competition
    from kit.train.checkpoint import build_model
    from kit.train.config import TrainConfig
    from kit.train.data import PosterDataset
    from kit.train.loop import train_one_epoch
    from kit.workdir import Workdir
    competition = Competition.find(Workdir(workdir))
    store = competition.store()
    config = TrainConfig(model="lenet")
    positions = np.arange(min(len(store), config.batch_size * batches))
    labels = np.zeros((len(positions), len(competition.genres())), np.uint8)
    source = Path(json.loads((Path(workdir) / "datasets").joinpath(
        store.dir.parent.name, "prepare.json").read_text())["source"])

    class DecodingDataset(Dataset):
        def __len__(self):
            return len(positions)

        def __getitem__(self, item):
            path = source / store.index["source"].iloc[int(positions[item])]
            image = Image.open(path).convert("RGB").resize(store.size[::-1])
            pixels = np.asarray(image).transpose(2, 0, 1).copy()
            return torch.from_numpy(pixels), torch.from_numpy(labels[item])
    dataset = PosterDataset(store, positions, labels) if mode == "store" else DecodingDataset()
    model = build_model(config, labels.shape[1], {"input_size": list(store.size)})
    optimizer = torch.optim.Adam(model.parameters())
    criterion = torch.nn.BCEWithLogitsLoss()

    def epoch(loader) -> float:
        started = time.perf_counter()
        train_one_epoch(model, criterion, optimizer, loader, mode,
                        bf16=config.bf16_training)
        return time.perf_counter() - started
    epoch(DataLoader(torch.utils.data.Subset(dataset, range(3 * config.batch_size)),
                     batch_size=config.batch_size))                      # warm-up
    seconds = epoch(DataLoader(dataset, batch_size=config.batch_size, shuffle=True))
    return {"images_per_second": round(len(dataset) / seconds, 1),
            "precision": config.resolved().precision}


def embedding_throughput(backbone: str, precision: str, images: int = 128) -> dict:
    import numpy as np
    from kit.embeddings import Backbone, Embedder
    from kit.memory import keep_freed_memory
    keep_freed_memory()             # as run_jobs does before every embedding job
    embedder = Embedder(Backbone(backbone), "full", precision)
    batch = np.random.default_rng(0).integers(0, 255, (32, 3, 345, 230), dtype=np.uint8)
    embedder(batch[:8])
    started = time.perf_counter()
    for _ in range(images // 32):
        embedder(batch)
    return {"images_per_second": round(images / (time.perf_counter() - started), 1)}


def pretrained_vs_random(workdir: str) -> dict:
    """Frozen-feature heads on real posters: ImageNet weights against random ones."""
    from eval.answers import load_answers
    from eval.scoring import score_submission
    from kit.predict import predict
    from kit.competition import Competition
    from kit.train.config import TrainConfig
    from kit.train.run import train
    from kit.workdir import Workdir
    wd = Workdir(workdir)
    key = load_answers(Competition.find(wd).folder / "private" / "answers.csv")
    random_weights = Path(workdir) / "random-lite0.pth"    # frozen mode wants weights named
    if not random_weights.exists():
        import timm
        import torch
        torch.manual_seed(0)
        torch.save(timm.create_model("tf_efficientnet_lite0", num_classes=0).state_dict(),
                   random_weights)
    out = {}
    for label, model, weights in (("imagenet", "efficientnet_lite0", None),
                                  ("random", "timm:tf_efficientnet_lite0", str(random_weights))):
        config = TrainConfig(model=model, pretrained=weights, frozen=True, optimizer="adamw",
                             lr=1e-3, batch_size=64, epochs=40, patience=8, dropout=0.2,
                             weight_decay=1e-4)
        train(config, wd, f"bench-{label}", resume=True, scheduler="inline")
        path = predict(wd, f"bench-{label}", Path(workdir) / "bench-subs")["submission"]
        public = score_submission(path, key, resamples=200)["public"]
        out[label] = {"f1_micro": round(public["f1_micro"], 4),
                      "f1_macro": round(public["f1_macro"], 4),
                      "f1_macro_interval": [round(v, 4) for v in public["f1_macro_interval"]]}
    return out


def make_answer_key(folder: str, films: int) -> None:
    """A competition folder with ``films`` test films and no posters (for scoring only)."""
    import numpy as np
    import pandas as pd
    from kit.synth import GENRES
    rng = np.random.default_rng(0)
    folder = Path(folder)
    (folder / "public").mkdir(parents=True, exist_ok=True)
    (folder / "private").mkdir(parents=True, exist_ok=True)
    labels = rng.random((films, len(GENRES))) < 0.12
    genres = ["|".join(g for g, on in zip(GENRES, row) if on) or "Drama" for row in labels]
    ids = [str(1_000_000 + i) for i in range(films)]
    usage = np.where(rng.random(films) < 0.5, "Public", "Private")
    pd.DataFrame({"id": ids, "genres": genres, "usage": usage}).to_csv(
        folder / "private" / "answers.csv", index=False)
    (folder / "public" / "genres.txt").write_text("\n".join(GENRES) + "\n")
    pd.DataFrame({"id": ids[:100], "genres": genres[:100], "part": "train"}).to_csv(
        folder / "public" / "train.csv", index=False)
    frame = pd.DataFrame(rng.random((films, len(GENRES))).round(4), columns=GENRES)
    frame.insert(0, "id", ids)
    frame.to_csv(folder / "submission.csv", index=False)
    (folder / "public" / "competition.json").write_text(json.dumps(   # written last: complete
        {"name": folder.name, "dataset": None, "image_size": [345, 230]}))


def score_time(folder: str) -> dict:
    from eval.answers import load_answers
    from eval.scoring import score_submission
    started = time.perf_counter()
    key = load_answers(Path(folder) / "private" / "answers.csv")
    score_submission(Path(folder) / "submission.csv", key)
    return {"seconds": round(time.perf_counter() - started, 2)}


def naive_score_time(folder: str) -> dict:
    """A per-row Python loop parser: the csv module, a dict per row, float() per cell."""
    import csv
    from sklearn.metrics import f1_score
    started = time.perf_counter()
    with open(Path(folder) / "private" / "answers.csv") as handle:
        answers = {row["id"]: set(row["genres"].split("|")) for row in csv.DictReader(handle)}
    genres = (Path(folder) / "public" / "genres.txt").read_text().split("\n")[:-1]
    truth, predicted = [], []
    with open(Path(folder) / "submission.csv") as handle:
        for row in csv.DictReader(handle):
            values = [float(row[g]) for g in genres]
            if any(not 0 <= v <= 1 for v in values):
                raise ValueError(row["id"])
            truth.append([g in answers[row["id"]] for g in genres])
            predicted.append([v >= 0.5 for v in values])
    f1_score(truth, predicted, average="macro", zero_division=0)
    return {"seconds": round(time.perf_counter() - started, 2)}


def server(work: str) -> dict:
    from server import server_benchmark
    return server_benchmark(work)


MEASUREMENTS = {"server": server, "preprocess": preprocess, "naive_preprocess": naive_preprocess,
                "lenet": lenet_throughput, "embedding": embedding_throughput,
                "pretrained": pretrained_vs_random, "make_key": make_answer_key,
                "score": score_time, "naive_score": naive_score_time}


def main() -> None:
    name, args = sys.argv[1], sys.argv[2:]
    result = MEASUREMENTS[name](*[int(a) if a.isdigit() else a for a in args])
    print(json.dumps(result if result is not None else {}))


if __name__ == "__main__":
    main()
