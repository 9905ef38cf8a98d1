import pytest
import torch

from progreid.api import load_model
from progreid.errors import CheckpointError
from progreid.models import build_model, load_weights, save_weights
from progreid.models.checkpoint import read_state_dict

from conftest import shared_path


@pytest.mark.parametrize("arch,dim", [("osnet_x0_25", 512), ("osnet_x0_5", 512), ("resnet18", 512)])
def test_forward_gives_one_feature_per_image(arch, dim):
    model = build_model(arch).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 32))
    assert out.shape == (2, dim) and model.feature_dim == dim


@pytest.mark.parametrize("weights", ["osnet_x0_25_msmt17.pth", "osnet_x0_25_market1501.pth"])
def test_torchreid_weights_load_strictly(weights):
    path = shared_path("weights", weights)
    model = build_model("osnet_x0_25")
    dropped = load_weights(model, path)
    assert dropped == ["classifier.weight", "classifier.bias"]
    raw = torch.load(path, weights_only=True)
    own = model.state_dict()
    assert set(raw) - set(own) == {"classifier.weight", "classifier.bias"} and set(own) <= set(raw)
    assert torch.equal(own["conv2.0.conv2d.3.conv2.weight"], raw["conv2.0.conv2d.3.conv2.weight"])


def test_wrong_arch_is_a_clear_error():
    with pytest.raises(CheckpointError, match="--arch"):
        load_weights(build_model("osnet_x0_5"), shared_path("weights", "osnet_x0_25_msmt17.pth"), "osnet_x0_5")


# A few torchvision ResNet-50 names and shapes (torchvision.models.resnet50().state_dict()).
TORCHVISION_RESNET50 = {
    "conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer2.3.conv2.weight": (128, 128, 3, 3), "layer3.5.bn3.weight": (1024,),
    "layer4.2.conv3.weight": (2048, 512, 1, 1), "layer4.0.downsample.1.num_batches_tracked": (),
}


def test_resnet50_has_torchvision_names_and_loads_their_checkpoint(tmp_path):
    model = build_model("resnet50")
    own = model.state_dict()
    assert len(own) == 318  # torchvision's 320 minus fc.weight, fc.bias
    for key, shape in TORCHVISION_RESNET50.items():
        assert tuple(own[key].shape) == shape
    tv_state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in own.items()}
    tv_state.update({"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)})
    torch.save(tv_state, tmp_path / "resnet50-imagenet.pth")
    fresh = build_model("resnet50")
    assert load_weights(fresh, tmp_path / "resnet50-imagenet.pth") == ["fc.weight", "fc.bias"]
    assert torch.equal(fresh.state_dict()["layer3.5.bn3.weight"], tv_state["layer3.5.bn3.weight"])
    # the same ImageNet file also initialises a ResNet with an embedding head
    headed = load_model("resnet50", tmp_path / "resnet50-imagenet.pth", embedding_dim=256)
    assert torch.equal(headed.state_dict()["backbone.conv1.weight"], tv_state["conv1.weight"])


def test_last_stride_one_doubles_the_final_map():
    x = torch.randn(1, 3, 256, 128)
    for stride, hw in ((1, (16, 8)), (2, (8, 4))):
        net = build_model("resnet18", last_stride=stride).eval()
        with torch.no_grad():
            maps = net.layer4(net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x))))))))
        assert tuple(maps.shape[-2:]) == hw


def test_checkpoint_formats_roundtrip(tmp_path):
    model = build_model("osnet_x0_25")
    save_weights(model, tmp_path / "m.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3},
               tmp_path / "m.pth.tar")
    for name in ("m.safetensors", "m.pth.tar"):
        other = build_model("osnet_x0_25")
        load_weights(other, tmp_path / name)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_untrusted_pickles_are_refused(tmp_path):
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_state_dict(tmp_path / "evil.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        read_state_dict(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")


def test_bn_neck_is_added_to_resnet_and_loads_plain_imagenet_weights(tmp_path):
    plain = build_model("resnet18")
    path = tmp_path / "imagenet.pth"
    torch.save(plain.state_dict(), path)
    necked = build_model("resnet18", bn_neck=True)
    load_weights(necked, path)
    assert torch.equal(necked.backbone.conv1.weight, plain.conv1.weight)
    assert not necked.neck.bias.requires_grad and torch.all(necked.neck.weight == 1)
    necked.train()
    out = necked(torch.randn(4, 3, 64, 32))
    assert out.shape == (4, 512) and torch.allclose(out.mean(0), torch.zeros(512), atol=1e-4)  # BN: centred
    assert build_model("osnet_x0_25", bn_neck=True).__class__.__name__ == "OSNet"  # its fc already ends in BN


def test_gem_pooling_lies_between_average_and_max_and_learns_its_exponent():
    from progreid.models.pooling import GeneralizedMeanPooling

    x = torch.rand(2, 8, 6, 4) + 0.01
    avg, top = x.mean((2, 3)), x.amax((2, 3))
    assert torch.allclose(GeneralizedMeanPooling(1.0)(x).flatten(1), avg, atol=1e-6)
    gem3 = GeneralizedMeanPooling(3.0)
    out = gem3(x).flatten(1)
    assert torch.all(out > avg) and torch.all(out < top)
    assert torch.allclose(GeneralizedMeanPooling(200.0)(x).flatten(1), top, rtol=0.05)
    out.sum().backward()
    assert gem3.p.grad is not None and gem3.p.grad.abs().item() > 0  # the exponent is trained with the rest


def test_source_weights_load_into_a_gem_network_and_its_checkpoint_says_how_it_pools(tmp_path):
    source = shared_path("weights", "osnet_x0_25_msmt17.pth")
    gem = load_model("osnet_x0_25", source, pooling="gem")  # the exponent is new: it starts at 3
    assert gem.pool.p.item() == 3.0
    assert torch.equal(gem.fc[0].weight, read_state_dict(source)["fc.0.weight"])
    with torch.no_grad():
        gem.pool.p.fill_(2.5)
    path = tmp_path / "adapted.safetensors"
    save_weights(gem, path)
    again = load_model("osnet_x0_25", path).eval()  # no pooling given: read from the weights
    assert again.pool.p.item() == 2.5
    images = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(again(images), gem.eval()(images))
        plain = load_model("osnet_x0_25", source).eval()
        assert not torch.allclose(plain(images), again(images))  # the pooling is not silently dropped
    with pytest.raises(CheckpointError, match="model.pooling=gem"):
        load_model("osnet_x0_25", path, pooling="avg")
    start_as_average = load_model("osnet_x0_25", source, pooling="gem", gem_p=1.0).eval()
    with torch.no_grad():  # exponent 1: the source's own features at round 0
        assert torch.allclose(start_as_average(images), plain(images), atol=1e-4)
