"""Image dataset, train/test transforms, identity-balanced sampling and size parsing."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from mtmct_reid.data.image_size import parse_image_size
from mtmct_reid.data.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IdentitySampler,
    ImageDataset,
    build_transforms,
)
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError


def _random_image(seed: int, size=(16, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _normalise(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.array(IMAGENET_MEAN, dtype=np.float32)) / np.array(
        IMAGENET_STD, dtype=np.float32
    )
    return torch.from_numpy(array).permute(2, 0, 1)


@pytest.fixture()
def image_records(tmp_path):
    paths = []
    for i in range(4):
        path = tmp_path / f"{i:04d}.jpg"
        _random_image(i).save(path)
        paths.append(path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    paths.insert(1, tmp_path / "broken.jpg")
    return Records.from_columns(paths, [10, 11, 12, 13, 14], [1, 1, 2, 2, 3], None, ["train"] * 5)


def test_parse_image_size():
    assert parse_image_size("384x192") == (384, 192)
    assert parse_image_size(" 256X128 ") == (256, 128)
    for bad in ("384", "x192", "0x10", "axb", "384x192x3", "-4x2"):
        with pytest.raises(ReIDError, match=f"image size '{bad}'"):
            parse_image_size(bad)


def test_test_transform_is_resize_and_normalise_only():
    image = _random_image(0, size=(16, 32))
    transform = build_transforms((32, 16), train=False)
    first = transform(image)
    assert first.shape == (3, 32, 16) and first.dtype == torch.float32
    # the image is already 32x16, so resizing is the identity: the output is plain normalisation
    torch.testing.assert_close(first, _normalise(image))
    for _ in range(20):  # deterministic: no flip, no crop, no erasing at test time
        assert torch.equal(transform(image), first)
    resized = build_transforms((64, 32), train=False)(_random_image(1, size=(50, 90)))
    assert resized.shape == (3, 64, 32)


def test_train_transform_flips_and_erases_randomly():
    torch.manual_seed(0)
    image = _random_image(2, size=(16, 32))
    plain = _normalise(image)
    mirrored = plain.flip(2)
    flip_only = build_transforms((32, 16), train=True, random_erasing=0.0, pad=0)
    outputs = [flip_only(image) for _ in range(30)]
    flipped = sum(torch.allclose(out, mirrored, atol=1e-6) for out in outputs)
    kept = sum(torch.allclose(out, plain, atol=1e-6) for out in outputs)
    assert flipped + kept == 30 and 5 <= flipped <= 25
    augmented = build_transforms((32, 16), train=True)
    outputs = [augmented(image) for _ in range(30)]
    assert len({out.numpy().tobytes() for out in outputs}) > 20
    assert all(out.shape == (3, 32, 16) for out in outputs)
    # random erasing (p=0.5) writes zeros (the mean colour after normalisation) into a block
    erase_only = build_transforms((32, 16), train=True, flip=False, pad=0, random_erasing=1.0)
    erased = erase_only(image)
    assert (erased == 0).any() and not (plain == 0).any()
    no_aug = build_transforms((32, 16), train=True, flip=False, pad=0, random_erasing=0.0)
    torch.testing.assert_close(no_aug(image), plain)


def test_pad_and_crop_shifts_the_image():
    torch.manual_seed(1)
    image = _random_image(3, size=(16, 32))
    crop_only = build_transforms((32, 16), train=True, flip=False, random_erasing=0.0, pad=4)
    outputs = [crop_only(image) for _ in range(20)]
    assert any(not torch.allclose(out, _normalise(image), atol=1e-6) for out in outputs)
    # every crop is the padded image at some offset within the pad
    padded = torch.zeros(3, 40, 24)
    padded[:] = ((0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD))[:, None, None]
    padded[:, 4:36, 4:20] = _normalise(image)
    for out in outputs:
        assert any(
            torch.allclose(out, padded[:, dy : dy + 32, dx : dx + 16], atol=1e-6)
            for dy in range(9)
            for dx in range(9)
        )


def test_dataset_items_and_corrupt_image_substitution(image_records, caplog):
    transform = build_transforms((32, 16), train=False)
    dataset = ImageDataset(image_records, transform)
    image, label, index = dataset[0]
    assert image.shape == (3, 32, 16) and (label, index) == (10, 0)
    # row 1 is broken: the next readable row stands in, with its own label and index
    image, label, index = dataset[1]
    assert (label, index) == (12, 2)
    assert torch.equal(image, dataset[2][0])
    assert dataset.bad_paths == [str(image_records.paths[1])]
    assert "skipping unreadable image" in caplog.text and "broken.jpg" in caplog.text
    dataset[1]
    assert len(dataset.bad_paths) == 1  # remembered, not reread
    relabelled = ImageDataset(image_records, transform, labels=[0, 1, 2, 3, 4])
    assert relabelled[4][1:] == (4, 4)
    with pytest.raises(ReIDError, match="labels has shape"):
        ImageDataset(image_records, transform, labels=[0, 1])


def test_strict_dataset_names_the_broken_file(image_records):
    dataset = ImageDataset(image_records, build_transforms((32, 16), train=False), strict=True)
    assert dataset[0][2] == 0
    with pytest.raises(ReIDError, match=r"broken\.jpg: cannot read image") as info:
        dataset[1]
    assert "\n" not in str(info.value)


def test_dataset_with_no_readable_image_fails(tmp_path):
    (tmp_path / "a.jpg").write_text("nope")
    dataset = ImageDataset([tmp_path / "a.jpg", tmp_path / "missing.jpg"], lambda im: im)
    with pytest.raises(ReIDError, match="none of the 2 images could be read"):
        dataset[0]


def test_dataset_accepts_pil_images_and_paths(tmp_path):
    image = _random_image(5)
    image.save(tmp_path / "x.png")
    transform = build_transforms((32, 16), train=False)
    dataset = ImageDataset([image, tmp_path / "x.png", str(tmp_path / "x.png")], transform)
    items = [dataset[i] for i in range(3)]
    assert torch.equal(items[0][0], items[1][0]) and torch.equal(items[1][0], items[2][0])
    assert [item[2] for item in items] == [0, 1, 2]


def test_identity_sampler_batches_are_balanced():
    # 10 identities with 1..10 images: small ones are sampled with replacement
    pids = np.repeat(np.arange(100, 110), np.arange(1, 11))
    sampler = IdentitySampler(pids, batch_size=8, num_instances=4, seed=0)
    indices = list(sampler)
    assert len(indices) % 8 == 0 and 0 < len(indices) <= len(sampler)
    for start in range(0, len(indices), 8):
        batch = pids[indices[start : start + 8]]
        counts = Counter(batch.tolist())
        assert len(counts) == 2 and set(counts.values()) == {4}
        # each identity's four images are consecutive
        assert len(set(batch[:4])) == 1 and len(set(batch[4:])) == 1
    # identities with >= 4 images contribute distinct images within a group
    for start in range(0, len(indices), 4):
        group = indices[start : start + 4]
        if np.sum(pids == pids[group[0]]) >= 4:
            assert len(set(group)) == 4
    assert list(IdentitySampler(pids, 8, 4, seed=0)) == indices
    assert list(sampler) != indices  # next epoch, new order


def test_identity_sampler_rejects_impossible_batches():
    with pytest.raises(ReIDError, match="needs at least 4 identities .* the data has 3"):
        IdentitySampler([1, 1, 2, 2, 3, 3], batch_size=16, num_instances=4)
    with pytest.raises(ReIDError, match="batch_size \\(10\\) must be a positive multiple"):
        IdentitySampler([1, 2, 3], batch_size=10, num_instances=4)


def test_parsing_an_image_size_does_not_import_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from mtmct_reid.data.image_size import parse_image_size\n"
        "from mtmct_reid.data.synth import SynthConfig\n"
        "SynthConfig(image_size=parse_image_size('384x192')).validate()\n"
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))\n"
    )
    repo = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
