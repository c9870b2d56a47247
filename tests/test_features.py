"""Feature extraction: part normalisation, flip averaging, batching, the features file, `extract`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from mtmct_reid import cli
from mtmct_reid.data.images import build_transforms
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.features import (
    FeatureExtractor,
    extract_featureset,
    normalize_parts,
    resolve_device,
)
from mtmct_reid.featureset import FeatureSet
from mtmct_reid.models import build_model
from tests._deploy import checkpoint_file

SIZE = (64, 32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model("pcb", num_classes=5, backbone="resnet18", weights="none")
    # Non-trivial BatchNorm statistics, so eval mode differs visibly from train mode.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _image(seed: int, size=(30, 70)) -> Image.Image:
    rng = np.random.default_rng(seed)
    # smooth blobs rather than noise, so that resizing keeps the picture recognisable
    small = rng.integers(0, 256, (7, 3, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BILINEAR)


def _reference_normalise(feats: np.ndarray) -> np.ndarray:
    n, parts, _ = feats.shape
    out = []
    for i in range(n):
        row = []
        for p in range(parts):
            v = feats[i, p].astype(np.float64)
            row.append(v / np.sqrt(np.sum(v * v)) / np.sqrt(parts))
        out.append(np.concatenate(row))
    return np.array(out)


def test_normalize_parts_matches_the_definition():
    rng = np.random.default_rng(0)
    for parts in (1, 3, 6):
        scales = rng.uniform(0.1, 50, (5, parts, 1))
        feats = (rng.normal(size=(5, parts, 17)) * scales).astype(np.float32)
        expected = _reference_normalise(feats)
        ours = normalize_parts(feats)
        assert ours.dtype == np.float32 and ours.shape == (5, parts * 17)
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
        ours_torch = normalize_parts(torch.from_numpy(feats))
        assert isinstance(ours_torch, torch.Tensor)
        np.testing.assert_allclose(ours_torch.numpy(), expected, rtol=1e-5, atol=1e-6)
        stripes = ours.reshape(5, parts, 17)
        np.testing.assert_allclose(np.linalg.norm(stripes, axis=2), 1 / math.sqrt(parts), rtol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    zeros = normalize_parts(np.zeros((1, 2, 3), dtype=np.float32))
    assert np.all(np.isfinite(zeros))
    with pytest.raises(ReIDError, match="expected \\[N, P, Dp\\]"):
        normalize_parts(np.zeros((2, 3)))


def test_features_equal_a_straightforward_forward_pass(model):
    images = [_image(i) for i in range(5)]
    extractor = FeatureExtractor(model, SIZE, batch_size=2)
    ours = extractor(images)
    transform = build_transforms(SIZE, train=False)
    batch = torch.stack([transform(im) for im in images])
    with torch.no_grad():
        raw = model.extract(batch) + model.extract(torch.flip(batch, dims=[3]))
    expected = _reference_normalise(raw.numpy())
    assert ours.shape == (5, 6 * 512) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    assert not model.training  # the extractor restores the model's mode
    unflipped = FeatureExtractor(model, SIZE, batch_size=4, flip=False, channels_last=False)
    with torch.no_grad():
        np.testing.assert_allclose(
            unflipped(images),
            _reference_normalise(model.extract(batch).numpy()),
            rtol=1e-4,
            atol=1e-5,
        )


def test_flip_averaging_makes_an_image_and_its_mirror_identical(model):
    images = [_image(10 + i) for i in range(3)]
    mirrors = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in images]
    flipped = FeatureExtractor(model, SIZE, batch_size=8, flip=True)
    np.testing.assert_allclose(flipped(images), flipped(mirrors), rtol=1e-4, atol=1e-5)
    single = FeatureExtractor(model, SIZE, batch_size=8, flip=False)
    assert np.abs(single(images) - single(mirrors)).max() > 1e-3


def test_paths_pil_images_batches_and_bf16_agree(model, tmp_path):
    images = [_image(20 + i) for i in range(5)]
    paths = []
    for i, image in enumerate(images):
        image.save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    reference = FeatureExtractor(model, SIZE, batch_size=5)(images)
    from_paths = FeatureExtractor(model, "64x32", batch_size=2)(paths, progress=True)
    np.testing.assert_allclose(from_paths, reference, rtol=1e-4, atol=1e-5)
    bf16 = FeatureExtractor(model, SIZE, batch_size=3, precision="bf16")(images)
    assert bf16.dtype == np.float32
    cosine = np.sum(bf16 * reference, axis=1)
    assert np.all(cosine > 0.98)
    assert FeatureExtractor(model, SIZE)([]).shape == (0, 6 * 512)


def test_unreadable_image_stops_extraction_naming_it(model, tmp_path):
    _image(0).save(tmp_path / "good.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    extractor = FeatureExtractor(model, SIZE, batch_size=4)
    with pytest.raises(ReIDError, match=r"bad\.jpg: cannot read image") as info:
        extractor([tmp_path / "good.jpg", tmp_path / "bad.jpg", tmp_path / "good.jpg"])
    assert "\n" not in str(info.value)


def test_option_errors():
    net = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="no extract"):
        FeatureExtractor(net, SIZE)
    with pytest.raises(ReIDError, match="device 'tpu'"):
        resolve_device("tpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ReIDError, match="CUDA is not available"):
            resolve_device("cuda")


def test_option_errors_on_a_model(model):
    with pytest.raises(ReIDError, match="precision '16'"):
        FeatureExtractor(model, SIZE, precision="16")
    with pytest.raises(ReIDError, match="batch_size must be positive"):
        FeatureExtractor(model, SIZE, batch_size=0)


def _market_dataset(root, seed=0):
    """A tiny Market-1501 folder: 3 ids, 2 cameras, train/query/gallery."""
    names = {
        "bounding_box_train": [
            "0002_c1s1_000451_01.jpg",
            "0002_c2s1_000500_01.jpg",
            "0007_c1s1_001000_01.jpg",
            "0007_c2s2_000100_01.jpg",
        ],
        "query": ["0011_c1s1_002000_01.jpg", "0013_c2s1_003000_01.jpg"],
        "bounding_box_test": [
            "0011_c2s1_002100_01.jpg",
            "0013_c1s1_003300_01.jpg",
            "0000_c1s1_000010_01.jpg",
            "-1_c2s1_000020_01.jpg",
            "0011_c1s2_000005_02.jpg",
        ],
    }
    count = 0
    for folder, files in names.items():
        (root / folder).mkdir(parents=True)
        for name in files:
            _image(seed + count).save(root / folder / name)
            count += 1
    return root


def test_extract_featureset_keeps_labels_in_row_order(model, tmp_path):
    paths = []
    for i in range(5):
        _image(40 + i).save(tmp_path / f"{i}.jpg")
        paths.append(tmp_path / f"{i}.jpg")
    records = Records.from_columns(
        paths,
        [3, 4, 3, -1, 0],
        [1, 2, 2, 1, 1],
        [5.0, 6.0, 7.0, 8.0, 9.0],
        ["gallery", "query", "train", "gallery", "gallery"],
    )
    fs = extract_featureset(
        model, records, SIZE, batch_size=2, progress=False, metadata={"run": "t"}
    )
    assert fs.query.pids.tolist() == [4] and fs.gallery.pids.tolist() == [3, -1, 0]
    assert fs.gallery.cams.tolist() == [1, 1, 1] and fs.gallery.times.tolist() == [5.0, 8.0, 9.0]
    assert fs.gallery.paths.tolist() == [str(paths[i]) for i in (0, 3, 4)]
    direct = FeatureExtractor(model, SIZE)([paths[i] for i in (1, 0, 3, 4)])
    np.testing.assert_allclose(
        np.vstack([fs.query.features, fs.gallery.features]), direct, rtol=1e-4, atol=1e-5
    )
    assert fs.metadata == {
        "model": "pcb",
        "backbone": "resnet18",
        "image_size": "64x32",
        "num_parts": 6,
        "flip": True,
        "precision": "32",
        "run": "t",
    }
    fs.save(tmp_path / "f.npz")
    loaded = FeatureSet.load(tmp_path / "f.npz")
    np.testing.assert_array_equal(loaded.gallery.features, fs.gallery.features)
    assert loaded.metadata["image_size"] == "64x32"
    with pytest.raises(ReIDError, match="no query images"):
        extract_featureset(model, records.subset(records.splits != "query"), SIZE)


def test_extract_cli_end_to_end(model, tmp_path, capsys):
    root = _market_dataset(tmp_path / "Market-1501")
    ckpt = checkpoint_file(tmp_path / "pcb.ckpt", model)
    out = tmp_path / "out" / "features.npz"
    code = cli.main(
        [
            "extract",
            str(ckpt),
            "--data-dir",
            str(root),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "3",
        ]
    )
    assert code == 0
    assert "2 query + 5 gallery features, 3072-d" in capsys.readouterr().out
    fs = FeatureSet.load(out)
    assert sorted(fs.query.pids.tolist()) == [11, 13]
    assert sorted(fs.gallery.pids.tolist()) == [-1, 0, 11, 11, 13]
    assert fs.metadata["checkpoint"] == str(ckpt) and fs.metadata["image_size"] == "64x32"
    order = np.argsort(fs.query.paths)
    direct = FeatureExtractor(model, SIZE)(list(fs.query.paths[order]))
    np.testing.assert_allclose(fs.query.features[order], direct, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fs.gallery.features, axis=1), 1.0, rtol=1e-5)

    # a different input size and no flip give different features of the same shape
    code = cli.main(
        [
            "extract",
            str(ckpt),
            "--data-dir",
            str(root),
            "--out",
            str(tmp_path / "g.npz"),
            "--device",
            "cpu",
            "--image-size",
            "96x48",
            "--no-flip",
        ]
    )
    assert code == 0
    other = FeatureSet.load(tmp_path / "g.npz")
    assert other.metadata["image_size"] == "96x48" and other.metadata["flip"] is False
    assert other.dim == fs.dim and not np.allclose(other.query.features, fs.query.features)


def test_extract_cli_errors_are_one_line(model, tmp_path, capsys):
    root = _market_dataset(tmp_path / "Market-1501")
    ckpt = checkpoint_file(tmp_path / "pcb.ckpt", model)
    (tmp_path / "junk.ckpt").write_text("nope")
    out = str(tmp_path / "f.npz")
    cases = [
        (
            ["extract", str(tmp_path / "junk.ckpt"), "--data-dir", str(root), "--out", out],
            "junk.ckpt: not a checkpoint",
        ),
        (
            ["extract", str(ckpt), "--data-dir", str(root), "--out", out, "--image-size", "big"],
            "image size 'big'",
        ),
        (
            ["extract", str(ckpt), "--data-dir", str(root), "--out", out, "--device", "tpu"],
            "device 'tpu'",
        ),
        (["extract", str(ckpt), "--data-dir", str(root), "--out", str(tmp_path)], "is a folder"),
        (["extract", str(ckpt), "--data-dir", str(tmp_path / "nowhere"), "--out", out], "nowhere"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("mtmct-reid extract: error:")
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "f.npz").exists()
