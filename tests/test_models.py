"""Model registry, backbones (last stride, weights), heads and checkpoint loading."""

from __future__ import annotations

import re
import urllib.error

import pytest
import torch
import torchvision

from mtmct_reid.errors import ReIDError
from mtmct_reid.models import (
    available_backbones,
    available_models,
    build_backbone,
    build_model,
    imagenet_cache_path,
    load_model_from_checkpoint,
)


@pytest.fixture(scope="module")
def pcb18():
    torch.manual_seed(0)
    return build_model("pcb", num_classes=7, backbone="resnet18", weights="none")


def _images(n: int = 2, height: int = 128, width: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _save_checkpoint(path, net, image_size=(128, 64), **overrides):
    hparams = {
        "model": net.model_name,
        "backbone": net.backbone_name,
        "num_classes": net.config["num_classes"],
        "image_size": list(image_size) if isinstance(image_size, tuple) else image_size,
        "last_stride": net.config["last_stride"],
        "num_parts": net.num_parts,
        "dropout": net.config["dropout"],
        "lr": 0.1,
    }
    hparams.update(overrides)
    state = {"model." + k: v for k, v in net.state_dict().items()}
    state["criterion.weight"] = torch.ones(3)  # other members of the LightningModule are ignored
    torch.save({"state_dict": state, "hyper_parameters": hparams, "epoch": 3}, path)


def test_registry_names_and_unknown_names_list_the_known_ones():
    assert {"pcb", "resnet50", "densenet121"} <= set(available_models())
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "densenet121"} <= set(
        available_backbones()
    )
    with pytest.raises(ReIDError, match="unknown model 'pcbx'; known: .*pcb.*resnet50"):
        build_model("pcbx", 10, weights="none")
    with pytest.raises(ReIDError, match="unknown backbone 'resnet49'; known: .*resnet50"):
        build_model("pcb", 10, backbone="resnet49", weights="none")
    with pytest.raises(ReIDError, match="num_classes must be a positive integer"):
        build_model("pcb", 0, weights="none")
    with pytest.raises(ReIDError, match=r"dropout must be a finite number in \[0.0, 1.0\)"):
        build_model("pcb", 5, backbone="resnet18", weights="none", dropout=1.5)


def test_pcb_logits_per_stripe_in_train_and_eval_and_raw_stripe_features(pcb18):
    x = _images()
    pcb18.train()
    logits = pcb18(x)
    assert len(logits) == 6 and all(t.shape == (2, 7) for t in logits)
    pcb18.eval()
    with torch.no_grad():
        logits = pcb18(x)
        feats = pcb18.extract(x)
        fmap = pcb18.backbone(x)
    assert len(logits) == 6 and all(t.shape == (2, 7) for t in logits)
    assert feats.shape == (2, 6, 512) and pcb18.feature_dim == 6 * 512
    # A 128x64 input gives a 8x4 map: stripe i is the mean of rows 8i/6 .. 8(i+1)/6 (adaptive pooling).
    for i in range(6):
        lo, hi = (8 * i) // 6, -((-8 * (i + 1)) // 6)
        torch.testing.assert_close(feats[:, i], fmap[:, :, lo:hi].mean(dim=(2, 3)))


def test_global_models_have_one_part_with_the_pooled_backbone_feature():
    torch.manual_seed(0)
    x = _images(height=64, width=32)
    for name, channels in (("resnet50", 2048), ("densenet121", 1024)):
        model = build_model(name, num_classes=5, weights="none").eval()
        assert model.backbone_name == name and model.num_parts == 1
        with torch.no_grad():
            logits = model(x)
            feats = model.extract(x)
            pooled = model.backbone(x).mean(dim=(2, 3))
        assert len(logits) == 1 and logits[0].shape == (2, 5)
        assert feats.shape == (2, 1, channels) and model.feature_dim == channels
        torch.testing.assert_close(feats[:, 0], pooled)
        assert model.head.block.bottleneck[0].out_features == 512


def test_last_stride_one_gives_a_sixteenth_of_the_input():
    x = torch.randn(1, 3, 384, 192)
    with torch.no_grad():
        trunk = build_backbone("resnet50", weights="none", last_stride=1).eval()
        assert trunk(x).shape == (1, 2048, 24, 12)
        # PCB's original 384x128 input gives the paper's 24x8 map
        assert trunk(x[..., :128]).shape == (1, 2048, 24, 8)
        trunk = build_backbone("resnet50", weights="none", last_stride=2).eval()
        assert trunk(x).shape == (1, 2048, 12, 6)
        small = torch.randn(1, 3, 128, 64)
        for name in ("resnet18", "densenet121"):
            assert build_backbone(name, "none", 1).eval()(small).shape[2:] == (8, 4)
            assert build_backbone(name, "none", 2).eval()(small).shape[2:] == (4, 2)


def test_parameter_groups_cover_every_parameter_exactly_once(pcb18):
    backbone = [id(p) for p in pcb18.backbone_parameters()]
    head = [id(p) for p in pcb18.head_parameters()]
    assert len(set(backbone)) == len(backbone) and len(set(head)) == len(head)
    assert not set(backbone) & set(head)
    assert set(backbone) | set(head) == {id(p) for p in pcb18.parameters()}
    # the ImageNet classifier is not carried along
    assert not any(name.startswith("backbone.fc") for name, _ in pcb18.named_parameters())


def test_head_initialisation_follows_pcb(pcb18):
    part = pcb18.head.parts[0]
    assert part.bottleneck[0].out_features == 256 and isinstance(
        part.bottleneck[1], torch.nn.BatchNorm1d
    )
    assert not any(isinstance(m, torch.nn.ReLU | torch.nn.LeakyReLU) for m in part.bottleneck)
    assert part.classifier.weight.std().item() == pytest.approx(0.001, rel=0.1)
    assert part.classifier.bias.abs().max().item() == 0.0


def test_weights_file_round_trip_gives_the_same_features(tmp_path, pcb18):
    x = _images(seed=1)
    pcb18.eval()
    with torch.no_grad():
        reference = pcb18.extract(x)
    # the trunk's own state dict, a whole ReIDModel state dict, and a Lightning-style checkpoint
    torch.save(pcb18.backbone.state_dict(), tmp_path / "trunk.pth")
    torch.save(pcb18.state_dict(), tmp_path / "model.pth")
    _save_checkpoint(tmp_path / "run.ckpt", pcb18)
    for name in ("trunk.pth", "model.pth", "run.ckpt"):
        other = build_model("pcb", 3, backbone="resnet18", weights=str(tmp_path / name)).eval()
        with torch.no_grad():
            torch.testing.assert_close(other.extract(x), reference)
    fresh = build_model("pcb", 3, backbone="resnet18", weights="none").eval()
    with torch.no_grad():
        assert not torch.allclose(fresh.extract(x), reference)


def test_torchvision_state_dict_loads_into_the_trunk(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "resnet18-imagenet.pth")
    trunk = build_backbone("resnet18", weights=str(tmp_path / "resnet18-imagenet.pth"))
    torch.testing.assert_close(trunk.layer4[1].conv2.weight, tv.layer4[1].conv2.weight)
    torch.testing.assert_close(trunk.bn1.running_var, tv.bn1.running_var)


def test_old_style_densenet_checkpoint_keys_load(tmp_path):
    # torchvision's own DenseNet URLs still serve keys like 'denselayer1.norm.1.weight'
    torch.manual_seed(0)
    tv = torchvision.models.densenet121(weights=None)
    old = {
        re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
        for k, v in tv.state_dict().items()
        if not k.endswith("num_batches_tracked")  # those files predate the counter
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    torch.save(old, tmp_path / "densenet121-a639ec97.pth")
    trunk = build_backbone("densenet121", weights=str(tmp_path / "densenet121-a639ec97.pth"))
    torch.testing.assert_close(
        trunk.features.denseblock4.denselayer16.conv2.weight,
        tv.features.denseblock4.denselayer16.conv2.weight,
    )


def test_bad_weights_files_are_one_line_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("not weights")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    torch.save(torchvision.models.densenet121(weights=None).state_dict(), tmp_path / "d121.pth")
    cases = {
        "notes.txt": "not a state-dict file",
        "list.pth": "expected a state dict",
        "r34.pth": "do not belong to a resnet18 backbone, first .layer1.2",
        "d121.pth": "no parameter of a resnet18 backbone",
        "absent.pth": "expected 'imagenet', 'none' or the path",
    }
    for name, message in cases.items():
        with pytest.raises(ReIDError, match=message) as info:
            build_backbone("resnet18", weights=str(tmp_path / name))
        assert "\n" not in str(info.value)


def test_offline_imagenet_download_names_the_cache_file(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ReIDError) as info:
        build_model("pcb", 10, backbone="resnet18", weights="imagenet")
    message = str(info.value)
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert imagenet_cache_path("resnet18") == expected
    assert str(expected) in message and "--weights PATH" in message and "none" in message
    assert "name resolution" in message and "\n" not in message


def test_cached_imagenet_file_is_used(monkeypatch, tmp_path):
    # torch.hub looks in <hub>/checkpoints first: a file placed there as the error message says loads.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    torch.manual_seed(1)
    tv = torchvision.models.resnet18(weights=None)
    seen = {}

    def cached(url, model_dir, **kwargs):
        seen["dir"] = model_dir
        return tv.state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", cached)
    trunk = build_backbone("resnet18", weights="imagenet")
    assert seen["dir"] == str(tmp_path / "hub" / "checkpoints")
    torch.testing.assert_close(trunk.conv1.weight, tv.conv1.weight)


def test_checkpoint_round_trip_restores_the_trained_model(tmp_path, pcb18):
    pcb18.eval()
    with torch.no_grad():
        for p in pcb18.head.parameters():  # make the head differ from a fresh initialisation
            p.add_(0.1)
    _save_checkpoint(tmp_path / "last.ckpt", pcb18)
    model, hparams = load_model_from_checkpoint(tmp_path / "last.ckpt")
    assert not model.training and hparams["image_size"] == (128, 64) and hparams["lr"] == 0.1
    x = _images(seed=2)
    with torch.no_grad():
        for ours, theirs in zip(model(x), pcb18(x), strict=True):
            torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(model.extract(x), pcb18.extract(x))


def test_checkpoint_errors_name_the_file(tmp_path, pcb18):
    (tmp_path / "junk.ckpt").write_bytes(b"\x00\x01 not a checkpoint")
    torch.save(pcb18.state_dict(), tmp_path / "plain.ckpt")
    _save_checkpoint(tmp_path / "other.ckpt", pcb18, model="resnet50")
    _save_checkpoint(tmp_path / "parts.ckpt", pcb18, num_parts=4)
    _save_checkpoint(tmp_path / "classes.ckpt", pcb18, num_classes=9)
    _save_checkpoint(tmp_path / "nomodel.ckpt", pcb18, model=None)
    _save_checkpoint(tmp_path / "size.ckpt", pcb18, image_size="big")
    torch.save({"state_dict": {}, "hyper_parameters": torch.nn.Linear(1, 1)}, tmp_path / "pk.ckpt")
    cases = {
        "absent.ckpt": "checkpoint not found",
        "junk.ckpt": "not a checkpoint",
        "pk.ckpt": r"holds a Python object \(torch.nn.modules.linear.Linear\) that only pickle",
        "plain.ckpt": "not a training checkpoint",
        "other.ckpt": "of a resnet50 with backbone resnet18 missing from the checkpoint",
        "parts.ckpt": "do not belong to a pcb",
        "classes.ckpt": r"has shape \(7, 256\), a pcb with backbone resnet18 expects \(9, 256\)",
        "nomodel.ckpt": "unknown model 'None'",
        "size.ckpt": "'image_size' is 'big', expected \\[height, width\\]",
    }
    for name, message in cases.items():
        with pytest.raises(ReIDError, match=message) as info:
            load_model_from_checkpoint(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)
    missing = {"model." + k: v for k, v in pcb18.state_dict().items() if "parts.5" not in k}
    torch.save(
        {
            "state_dict": missing,
            "hyper_parameters": {"model": "pcb", "num_classes": 7, "backbone": "resnet18"},
        },
        tmp_path / "missing.ckpt",
    )
    with pytest.raises(ReIDError, match="weight\\(s\\) of a pcb .* missing .*'model.head.parts.5"):
        load_model_from_checkpoint(tmp_path / "missing.ckpt")
