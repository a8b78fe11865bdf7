import pytest
import timm
import torch
from torch import nn

from kit.errors import KitError
from kit.models import create_model, list_models
from kit.models.lenet import ConvAvgPool
from kit.models.pretrained import LITE_PRESETS, lite_weights


def posters(*shape: int) -> torch.Tensor:
    """Random uint8 posters, what every model takes."""
    return torch.randint(0, 256, shape, dtype=torch.uint8)


def test_lenet_follows_the_report():
    model = create_model("lenet", 19, dropout=0.25)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (3, 6, (5, 5)), (6, 16, (5, 5)), (16, 16, (5, 5)), (16, 16, (5, 5))]
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["ConvAvgPool", "ReLU"] * 4
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [l.out_features for l in linears] == [240, 168, 19]
    kinds = [type(m).__name__ for m in model.head]
    assert kinds == ["Flatten", "Linear", "Dropout", "ReLU", "Linear", "Dropout", "ReLU", "Linear"]
    assert model(posters(2, 3, 345, 230)).shape == (2, 19)


def test_fused_conv_and_pool_equal_a_convolution_then_an_average_pool():
    torch.manual_seed(0)
    fused = ConvAvgPool(3, 6)
    plain = nn.Sequential(nn.Conv2d(3, 6, 5), nn.AvgPool2d(2))
    plain[0].load_state_dict(fused.state_dict())
    images = torch.randn(2, 3, 45, 31)
    out_fused, out_plain = fused(images), plain(images)
    assert out_fused.shape == out_plain.shape == (2, 6, 20, 13)
    torch.testing.assert_close(out_fused, out_plain, rtol=1e-5, atol=1e-5)
    out_fused.square().sum().backward()
    out_plain.square().sum().backward()
    torch.testing.assert_close(fused.weight.grad, plain[0].weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fused.bias.grad, plain[0].bias.grad, rtol=1e-4, atol=1e-4)


def test_lenet_refuses_an_input_too_small_for_its_four_blocks():
    assert create_model("lenet", 3, input_size=(76, 76))(posters(1, 3, 76, 76)).shape == (1, 3)
    with pytest.raises(ValueError, match="too small"):
        create_model("lenet", 3, input_size=(75, 100))


def test_registry_and_unknown_names():
    assert {"lenet", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(
        list_models())
    with pytest.raises(KitError, match="unknown model 'alexnet'"):
        create_model("alexnet", 3)
    with pytest.raises(KitError, match="timm has no model"):
        create_model("timm:not_a_model_at_all", 3)


def test_any_timm_model_gets_a_resized_head_and_its_own_input_size():
    model = create_model("timm:mobilenetv3_small_050", 7)
    assert model.preprocess.size == (224, 224)
    batch = posters(2, 3, 345, 230)
    assert model(batch).shape == (2, 7)
    resized = torch.nn.functional.interpolate(batch.float() / 255, size=(224, 224),
                                              mode="bilinear", antialias=True)
    mean, std = model.preprocess.mean, model.preprocess.std
    torch.testing.assert_close(model.preprocess(batch), (resized - mean) / std,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("preset", sorted(LITE_PRESETS))
def test_lite_package_weights_map_every_tensor(preset):
    network = timm.create_model(LITE_PRESETS[preset][2], pretrained=False)
    result = network.load_state_dict(lite_weights(preset), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(network.state_dict()) == len(lite_weights(preset))


def test_lite0_weights_are_trained_imagenet_weights():
    # On poster-like images a trained ImageNet network is confident (top-1 about 0.3);
    # randomly initialised, it spreads its belief over the 1,000 classes (about 0.01).
    import numpy as np
    from kit.synth import draw_labels, render_poster
    rng = np.random.default_rng(0)
    images = np.stack([np.asarray(render_poster(draw_labels(rng), rng).resize((224, 224)))
                       for _ in range(8)])
    batch = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    confidence = {}
    torch.manual_seed(0)
    for weights in ("package", "random"):
        network = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
        if weights == "package":
            network.load_state_dict(lite_weights("efficientnet_lite0"))
        with torch.no_grad():
            confidence[weights] = network(batch).softmax(-1).max(-1).values.mean().item()
    assert confidence["package"] > 0.15 and confidence["package"] > 3 * confidence["random"]


def test_local_checkpoint_loads_into_a_resized_model(tmp_path):
    source = timm.create_model("mobilenetv3_small_050", pretrained=False)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pth")
    model = create_model("timm:mobilenetv3_small_050", 5, pretrained=str(tmp_path / "w.pth"))
    loaded = model.network.state_dict()
    assert torch.equal(loaded["conv_stem.weight"], source.state_dict()["conv_stem.weight"])
    assert loaded["classifier.weight"].shape[0] == 5
    with pytest.raises(KitError, match="pretrained weights file .* does not exist"):
        create_model("timm:mobilenetv3_small_050", 5, pretrained=str(tmp_path / "nope.pth"))


def test_pretrained_weights_that_are_not_a_state_dict_get_one_message(tmp_path):
    import argparse
    source = timm.create_model("mobilenetv3_small_050", pretrained=False).state_dict()
    torch.save(source, tmp_path / "whole.pth")
    truncated = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(truncated[:len(truncated) // 2])
    (tmp_path / "text.pth").write_text("root:x:0:0:root:/root:/bin/bash\n")
    torch.save({"state_dict": source, "args": argparse.Namespace(lr=1)}, tmp_path / "code.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    expected = {"truncated": "is not a file torch.save wrote", "text": "is not a file torch.save",
                "code": r"holds objects other than .*argparse.Namespace.*not loaded",
                "list": "holds no state dict"}
    for name, message in expected.items():
        with pytest.raises(KitError, match=f"pretrained weights file .*{name}.pth {message}"):
            create_model("timm:mobilenetv3_small_050", 5, pretrained=str(tmp_path / f"{name}.pth"))


@pytest.mark.parametrize("variable, value, reason", [
    ("HF_HUB_OFFLINE", "1", "HF_HUB_OFFLINE is set"),
    ("HF_ENDPOINT", "https://hub.invalid", "hub.invalid unreachable"),
])
def test_hub_weights_fail_offline_with_a_clear_message(monkeypatch, variable, value, reason):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(KitError, match=f"{reason}.*offline; pass --pretrained PATH"):
        create_model("timm:mobilenetv3_small_050", 5, hub=True)
