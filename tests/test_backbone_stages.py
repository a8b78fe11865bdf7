"""A backbone's stages: pooled beside its features (multi-scale), or tuned on cached maps of the
stages before them (partial fine-tuning)."""
import numpy as np
import pandas as pd
import pytest
import timm
import torch

from kit.competition import Competition
from kit.embeddings import Backbone, embed_store, embedding_jobs, images_per_batch
from kit.errors import KitError
from kit.models.preprocess import short_side_size
from kit.models.pretrained import feature_extractor, stage_encoder
from kit.models.stages import MultiScaleFeatures, split_network
from kit.predict import predict
from kit.train.checkpoint import build_model
from kit.train.config import TrainConfig
from kit.train.precision import resolve_precision
from kit.train.loop import make_optimizer
from kit.train.run import train
from kit.workdir import Workdir
from tests.training_setup import private_moved_away

TUNED = dict(model="efficientnet_lite0", frozen=True, views=("full", "top"), tuned_stages=1,
             head_hidden=16, epochs=2, batch_size=32, backbone_lr=1e-3)


def test_cached_maps_through_the_untuned_stages_give_the_cached_features(workdir):
    """Cutting the backbone in two loses nothing: the last stages over the cached maps of the
    stages before them give the pooled features of the whole backbone."""
    store = Competition.find(Workdir(workdir)).store()
    positions = np.arange(40)
    lite0 = Backbone("efficientnet_lite0")
    maps = embed_store(store, Backbone(lite0.name, tuned_stages=2), ("top",), "fp32")
    pooled = embed_store(store, lite0, ("top",), "fp32").features(positions)
    shape = maps.row_shape()
    assert maps.dirs[0].name.endswith("-maps-2") and len(shape) == 3
    encoder = stage_encoder("efficientnet_lite0", 2, shape).eval()
    with torch.no_grad():
        features = encoder(torch.from_numpy(maps.features(positions)).float())
    torch.testing.assert_close(features, torch.from_numpy(pooled).float(), atol=0.02, rtol=0.01)


def tuned_run(config: TrainConfig, name: str, competition, workdir, tmp_path):
    """Train and predict ``name`` without the answer key in reach; its best checkpoint and the
    names of the store's embedding caches."""
    with private_moved_away(competition, tmp_path):
        train(config, Workdir(workdir), name)
        submission = predict(Workdir(workdir), name, tmp_path / "subs")["submission"]
    assert len(pd.read_csv(submission)) == len(competition.test_ids())
    cached = {folder.name for folder in (competition.store().dir / "embeddings").iterdir()}
    return torch.load(Workdir(workdir).run(name) / "best.pt", weights_only=False), cached


def test_a_run_tunes_the_last_stages_and_predicts_from_cached_maps(workdir, competition,
                                                                    tmp_path):
    config = TrainConfig(**TUNED, mirror=True)
    best, cached = tuned_run(config, "tuned", competition, workdir, tmp_path)
    precision = resolve_precision("auto")
    assert {f"efficientnet_lite0-{v}-{precision}-maps-1"
            for v in ("full", "top", "flip", "flip-top")} <= cached
    assert best["data_options"]["in_features"] == 2 * 1280      # pooled features of two views
    start = build_model(config, len(best["genres"]), best["data_options"]).state_dict()
    tuned = {k: v for k, v in best["model_state"].items() if k.startswith("encoder.")}
    weights = [k for k in tuned if k.endswith("weight") and "bn" not in k]
    statistics = [k for k in tuned if k.endswith(("running_mean", "running_var"))]
    assert weights and statistics
    assert any(not torch.equal(tuned[k], start[k]) for k in weights)       # weights tuned
    assert all(torch.equal(tuned[k], start[k]) for k in statistics)        # ImageNet statistics


def test_the_tuned_stages_learn_at_their_own_rate(workdir):
    config = TrainConfig(**TUNED, lr=3e-3)
    model = build_model(config, 5, {"in_features": 2 * 1280, "mean": None, "std": None,
                                    "map_shape": [192, 4, 3]})
    groups = make_optimizer(config, model).param_groups
    assert [group["lr"] for group in groups] == [3e-3, 1e-3]
    tuned = sum(p.numel() for p in model.encoder.parameters())
    assert sum(p.numel() for p in groups[1]["params"]) == tuned > 0
    frozen_head = make_optimizer(TrainConfig(**{**TUNED, "tuned_stages": 0}),
                                 build_model(TrainConfig(model="efficientnet_lite0", frozen=True),
                                             5, {"in_features": 8, "mean": None, "std": None}))
    assert len(frozen_head.param_groups) == 1


@pytest.mark.parametrize("values, message", [
    ({"tuned_stages": 1}, "without frozen = true: tuned_stages;"),
    ({"frozen": True, "tuned_stages": 1, "joined_backbones": ["efficientnet_lite1"]},
     "tuned_stages tunes the stages of one backbone"),
    ({"frozen": True, "tuned_stages": 7}, "tuned_stages in opts must be between 0 and 6"),
    ({"stage_features": 3}, "without frozen = true: stage_features;"),
    ({"short_side": 260}, "without frozen = true: short_side;"),
    ({"frozen": True, "tuned_stages": 1, "short_side": 260, "views": ["full", "top"]},
     "tuned_stages caches maps of one shape for every view"),
    ({"frozen": True, "tuned_stages": 1, "short_side": 260, "views": ["flip", "middle"]},
     "short_side gives the full poster"),
])
def test_fine_tuning_settings_are_refused_where_they_cannot_work(values, message):
    with pytest.raises(KitError, match=message):
        TrainConfig(model="efficientnet_lite0").updated(values, "opts")


def test_the_tuned_stages_see_the_whole_poster_upright_at_the_short_side(workdir, competition,
                                                                         tmp_path):
    """Partial fine-tuning with --short-side: the maps of the full poster and its mirror image
    keep the poster's aspect (taller than wide), and a run tunes on them and predicts."""
    config = TrainConfig(**{**TUNED, "views": ("full",), "epochs": 1}, mirror=True, short_side=64)
    best, cached = tuned_run(config, "tuned-upright", competition, workdir, tmp_path)
    precision = resolve_precision("auto")
    assert {f"efficientnet_lite0-{v}-{precision}-maps-1-side-64" for v in ("full", "flip")} \
        <= cached
    channels, height, width = best["data_options"]["map_shape"]
    assert height > width


def test_multi_scale_features_are_the_features_then_each_last_stage_pooled(workdir, competition,
                                                                          tmp_path):
    config = TrainConfig(model="efficientnet_lite0", frozen=True, views=("middle",),
                         stage_features=2, epochs=1, batch_size=32)
    with private_moved_away(competition, tmp_path):
        train(config, Workdir(workdir), "multi-scale")
        predict(Workdir(workdir), "multi-scale", tmp_path / "subs")
    best = torch.load(Workdir(workdir).run("multi-scale") / "best.pt", weights_only=False)
    assert best["data_options"]["in_features"] == 1280 + 192 + 320   # Lite0's last two stages
    store = competition.store()
    positions = np.arange(30)
    joined = embed_store(store, Backbone("efficientnet_lite0", stage_features=2), ("middle",),
                         resolve_precision("auto"))
    assert joined.dirs[0].name.endswith("-stages-2")
    plain = embed_store(store, Backbone("efficientnet_lite0"), ("middle",),
                        resolve_precision("auto"))
    np.testing.assert_array_equal(joined.features(positions)[:, :1280],
                                  plain.features(positions))
    with pytest.raises(KitError, match="stage_features pools stages that tuned_stages"):
        config.updated({"tuned_stages": 1})


def test_views_keep_their_aspect_at_the_short_side_they_are_given(workdir, competition,
                                                                  tmp_path):
    """--short-side: the full poster is seen upright at that many pixels across, each square crop
    at that size; not squashed into the backbone's square input."""
    assert short_side_size(345, 230, 260) == (390, 260)
    assert short_side_size(230, 230, 260) == (260, 260)
    assert images_per_batch(64, 0, (345, 230)) == images_per_batch(64, 350, (345, 230)) == 64
    assert images_per_batch(64, 1024, (345, 230)) == 10       # 1536x1024 posters: 10 a batch
    assert images_per_batch(64, 2048, (345, 230)) == 2
    store = competition.store()
    folders, jobs = embedding_jobs(store, Backbone("efficientnet_lite0", short_side=2048),
                                   ("full",), "fp32", batch_size=64)
    capped = images_per_batch(64, 2048, store.size)
    assert jobs and capped < 64 and {job.batch_size for job in jobs} == {capped}
    assert folders[0].name.endswith("-side-2048")
    posters = torch.from_numpy(np.stack([np.array(store[i]) for i in range(6)]))
    cache = embed_store(store, Backbone("efficientnet_lite0", short_side=96), ("full",), "fp32")
    assert cache.dirs[0].name == "efficientnet_lite0-full-fp32-side-96"
    extractor = feature_extractor("efficientnet_lite0")
    extractor.preprocess.size = short_side_size(*posters.shape[-2:], 96)
    with torch.no_grad():
        upright = extractor(posters)
    torch.testing.assert_close(torch.from_numpy(cache.features(np.arange(6))).float(), upright,
                               atol=0.02, rtol=0.01)
    squashed = embed_store(store, Backbone("efficientnet_lite0"), ("full",), "fp32")
    assert not np.allclose(squashed.features(np.arange(6)), cache.features(np.arange(6)),
                           atol=0.02)
    config = TrainConfig(model="efficientnet_lite0", frozen=True, views=("top",), mirror=True,
                         short_side=64, epochs=1, batch_size=32)
    with private_moved_away(competition, tmp_path):
        train(config, Workdir(workdir), "upright")
        predict(Workdir(workdir), "upright", tmp_path / "subs")
    cached = {folder.name for folder in (store.dir / "embeddings").iterdir()}
    precision = resolve_precision("auto")
    assert {f"efficientnet_lite0-{v}-{precision}-side-64" for v in ("top", "flip-top")} <= cached


def test_a_backbone_without_stages_to_tune_is_one_clear_error():
    with pytest.raises(KitError, match="EfficientNet-style backbone .* ResNet has no conv_stem"):
        split_network(timm.create_model("resnet18", pretrained=False, num_classes=0), 1)
    network = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    with pytest.raises(KitError, match="between 1 and 6 for this backbone"):
        split_network(network, 7)
    with pytest.raises(KitError, match="stage_features must be between 1 and 7"):
        MultiScaleFeatures(network, 8)


def test_search_draws_the_fine_tuning_settings(workdir):
    from kit.train.search import random_search
    config = TrainConfig(**{**TUNED, "tuned_stages": 0, "epochs": 1})
    result = random_search(config, Workdir(workdir), "ft", trials=2, epochs=1, seed=4,
                           space=("tuned_stages", "backbone_lr"))
    trials = pd.read_csv(Workdir(workdir).root / "searches" / "ft" / "trials.csv")
    assert trials["tuned_stages"].isin([0, 1, 2]).all()
    assert trials["backbone_lr"].between(1e-5, 1e-3).all()
    assert TrainConfig.from_file(result["best_config"]).tuned_stages == result["best_tuned_stages"]
    multi_scale = config.updated({"stage_features": 2})
    with pytest.raises(KitError, match="stage_features pools stages that tuned_stages would "
                                       "tune.*in the values --space drew for trial 1"):
        random_search(multi_scale, Workdir(workdir), "clash", 3, 1, seed=4,
                      space=("tuned_stages",))
    assert not list(Workdir(workdir).runs.glob("clash-*"))
    with pytest.raises(KitError, match="--space tuned_stages needs a frozen-feature config"):
        random_search(TrainConfig(model="lenet"), Workdir(workdir), "x", 1, 1,
                      space=("tuned_stages",))
