"""Heads on a frozen backbone: the embedding cache, joined backbones, mirror images, heads
trained side by side."""
import os

import numpy as np
import pandas as pd
import pytest
import torch

from kit.errors import KitError
from kit.competition import Competition
from kit.predict import predict
from kit.train.checkpoint import build_model, model_of
from kit.train.config import TrainConfig
from kit.train.data import embed_for
from kit.train.inference import as_model_input
from kit.train.precision import resolve_precision
from kit.train.run import train
from kit.workdir import Workdir
from tests.training_setup import TINY, private_moved_away


def test_frozen_backbone_head_and_resumable_embedding_cache(workdir, competition, tmp_path):
    from kit.embeddings import Backbone, embed_store
    config = TrainConfig(model="efficientnet_lite0", frozen=True, views=("full", "top"),
                         epochs=2, batch_size=32, lr=0.01)
    with private_moved_away(competition, tmp_path):       # embedding included
        summary = train(config, Workdir(workdir), "frozen")
        predict(Workdir(workdir), "frozen", tmp_path / "subs")
    assert summary["epochs_run"] == 2
    store = Competition.find(Workdir(workdir)).store()
    cache = embed_store(store, Backbone("efficientnet_lite0"), ("full", "top"))
    before = cache.features(np.arange(len(store)))
    assert before.shape == (len(store), 2 * 1280)
    first = sorted(cache.dirs[1].glob("emb-*.npy"))[0]
    first.unlink()
    first.with_suffix(".json").unlink()
    again = embed_store(store, Backbone("efficientnet_lite0"), ("full", "top")).features(
        np.arange(len(store)))
    np.testing.assert_array_equal(before, again)


def test_joined_backbones_put_their_embeddings_side_by_side(workdir, competition, tmp_path):
    """A frozen head on Lite0 and Lite1 features of the same view: one input of both widths,
    trained and predicted like any run; elsewhere the option is refused."""
    config = TrainConfig(model="efficientnet_lite0", frozen=True, epochs=1, batch_size=32,
                         joined_backbones=("efficientnet_lite1",))
    assert TrainConfig.from_file(write_config(tmp_path, config)) == config
    with private_moved_away(competition, tmp_path):
        train(config, Workdir(workdir), "joined")
        submission = predict(Workdir(workdir), "joined", tmp_path / "subs")["submission"]
    best = torch.load(Workdir(workdir).run("joined") / "best.pt", weights_only=False)
    assert best["data_options"]["in_features"] == 1280 + 1280
    assert len(pd.read_csv(submission)) == len(Competition.find(Workdir(workdir)).test_ids())
    with pytest.raises(KitError, match="without frozen = true: joined_backbones;"):
        TrainConfig(**TINY).updated({"joined_backbones": ["efficientnet_lite1"]})


def test_separate_heads_are_the_heads_each_backbone_trains_alone(workdir, competition,
                                                                 tmp_path):
    """separate_heads: on Lite1's features joined to Lite0's, with mirror images, each backbone
    gets heads of its own that read only its columns of both halves, so they are the heads a
    run of that backbone alone trains, bit for bit; the run pools all of them, and kit predict
    needs nothing more. Combinations that cannot work are refused."""
    from kit.train.crossfit import pool_out_of_fold
    common = dict(frozen=True, epochs=2, batch_size=32, lr=0.01, folds=2, head_hidden=16,
                  mirror=True)
    config = TrainConfig(model="efficientnet_lite1", joined_backbones=("efficientnet_lite0",),
                         separate_heads=True, **common)
    with private_moved_away(competition, tmp_path):
        summary = train(config, Workdir(workdir), "separate")
        train(TrainConfig(model="efficientnet_lite0", **common), Workdir(workdir), "lite0")
        submission = predict(Workdir(workdir), "separate", tmp_path / "subs")["submission"]
    run = Workdir(workdir).run("separate")
    members = {(backbone, fold): torch.load(run / backbone / f"fold-{fold}" / "best.pt",
                                            weights_only=False)
               for backbone in ("efficientnet_lite1", "efficientnet_lite0") for fold in (1, 2)}
    store = Competition.find(Workdir(workdir)).store()
    joined = embed_for(config, store)         # Lite1's and Lite0's features, mirror images too
    for fold in (1, 2):
        assert members["efficientnet_lite1", fold]["data_options"]["columns"] == [0, 1280]
        separate = members["efficientnet_lite0", fold]
        assert separate["data_options"]["columns"] == [1280, 2560]
        alone = torch.load(Workdir(workdir).run("lite0") / f"fold-{fold}" / "best.pt",
                           weights_only=False)
        np.testing.assert_array_equal(separate["valid"]["probabilities"],
                                      alone["valid"]["probabilities"])
        for key, tensor in alone["model_state"].items():
            assert torch.equal(tensor, separate["model_state"][key]), (fold, key)
        # trained on a copy of its columns, the saved head reads them out of joined rows
        _, head = model_of(separate, "a separate head")
        rows = joined.features(store.positions(separate["valid"]["ids"]))
        with torch.no_grad():
            again = torch.sigmoid(head.eval()(as_model_input(torch.from_numpy(rows))))
        np.testing.assert_allclose(again.numpy(), separate["valid"]["probabilities"], atol=1e-6)
    ensemble = torch.load(run / "best.pt", weights_only=False)
    assert len(ensemble["data_options"]["members"]) == 4
    pooled, _ = pool_out_of_fold([member["valid"] for member in members.values()])
    np.testing.assert_allclose(ensemble["valid"]["probabilities"], pooled, atol=1e-6)
    assert summary["out_of_fold_films"] == len(pooled)
    assert len(pd.read_csv(submission)) == len(Competition.find(Workdir(workdir)).test_ids())
    with pytest.raises(KitError, match="separate_heads cross-fits heads of each backbone"):
        TrainConfig(model="efficientnet_lite1", frozen=True, folds=2, separate_heads=True)
    with pytest.raises(KitError, match="separate_heads gives each head its own backbone"):
        config.updated({"head_backbone": "efficientnet_lite0"})
    with pytest.raises(KitError, match="head_backbone efficientnet_lite2 is neither"):
        TrainConfig(model="efficientnet_lite1", frozen=True, head_backbone="efficientnet_lite2")


def write_config(folder, config: TrainConfig):
    path = folder / "joined.toml"
    path.write_text(config.to_toml())
    return path


def test_mirror_trains_on_a_film_or_its_mirror_and_predicts_the_mean_of_both(
        workdir, competition, tmp_path):
    """The mirrored views are embedded beside the views; the head's input per film is the film
    then its mirror image, and its prediction is the mean of both, whichever comes first."""
    from kit.embeddings import mirror_view, view
    images = torch.arange(2 * 3 * 12 * 8, dtype=torch.float32).reshape(2, 3, 12, 8)
    for name in ("full", "top", "middle", "bottom"):
        assert torch.equal(view(images, mirror_view(name)), view(images, name).flip(-1))
        assert mirror_view(mirror_view(name)) == name
    config = TrainConfig(model="efficientnet_lite0", frozen=True, epochs=1, batch_size=32,
                         views=("full", "top"), mirror=True, head_hidden=16)
    with private_moved_away(competition, tmp_path):
        train(config, Workdir(workdir), "mirror")
        predict(Workdir(workdir), "mirror", tmp_path / "subs")
    store = Competition.find(Workdir(workdir)).store()
    cached = {folder.name for folder in (store.dir / "embeddings").iterdir()}
    assert {f"efficientnet_lite0-{v}-{resolve_precision('auto')}"
            for v in ("flip", "flip-top", "full", "top")} <= cached
    best = torch.load(Workdir(workdir).run("mirror") / "best.pt", weights_only=False)
    assert best["data_options"]["in_features"] == 2 * 1280
    model = build_model(config, len(best["genres"]), best["data_options"]).eval()
    model.load_state_dict(best["model_state"])
    film, mirrored = torch.randn(4, 2 * 1280), torch.randn(4, 2 * 1280)
    both = model(torch.cat([film, mirrored], 1))
    torch.testing.assert_close(both, model(torch.cat([mirrored, film], 1)))
    model.mirror = False
    alone = [model(half).sigmoid() for half in (film, mirrored)]
    torch.testing.assert_close(both.sigmoid(), (alone[0] + alone[1]) / 2)


def test_only_frozen_heads_train_side_by_side_and_no_more_than_cores_and_memory_hold():
    import psutil
    from kit.train.side_by_side import HEAD_WORKER_BYTES, head_workers
    from kit.train.distributed import Distributed
    heads = TrainConfig(model="efficientnet_lite0", frozen=True, folds=10, repeats=3,
                        head_hidden=64)
    alone = Distributed()
    side_by_side = head_workers(heads, alone, "auto", 30)
    assert side_by_side == max(1, min(os.cpu_count(), 30,
                                      psutil.virtual_memory().available // HEAD_WORKER_BYTES))
    assert head_workers(heads, alone, "auto", 1) == 1
    assert head_workers(heads, alone, "inline", 30) == 1
    assert head_workers(heads, Distributed(0, 2), "auto", 30) == 1            # torchrun
    assert head_workers(TrainConfig(folds=10), alone, "auto", 30) == 1         # an image model
    assert head_workers(heads.updated({"tuned_stages": 1}), alone, "auto", 30) == 1
    assert head_workers(heads.updated({"head_hidden": 0}), alone, "auto", 30) == 1  # logistic


def test_frozen_head_trained_on_fewer_films_than_features_stays_calibrated():
    from kit.models.head import EmbeddingHead
    from kit.train.data import feature_scaling
    generator = torch.Generator().manual_seed(0)
    train_x, valid_x = torch.randn(40, 300, generator=generator), torch.randn(200, 300,
                                                                            generator=generator)
    train_x[:, :150] = 0.5                  # constant on the training films, not on the others
    train_y, valid_y = (train_x[:, 200:205] > 0).float(), (valid_x[:, 200:205] > 0).float()
    mean, std = feature_scaling(train_x)
    torch.manual_seed(0)
    head = EmbeddingHead(300, 5, mean=mean, std=std)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.01)
    loss = torch.nn.BCEWithLogitsLoss()
    for _ in range(30):
        optimizer.zero_grad()
        loss(head(train_x), train_y).backward()
        optimizer.step()
    head.eval()
    with torch.no_grad():
        assert float(loss(head(valid_x), valid_y)) < 1.5      # a std clamped at 1e-6: 19,000
