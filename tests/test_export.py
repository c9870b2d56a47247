"""ONNX export: parity with PyTorch on real images, ONNX extraction, metadata and bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from mtmct_reid import cli
from mtmct_reid._io import describe_file
from mtmct_reid.errors import ReIDError
from mtmct_reid.export import PREFIX, OnnxReIDModel, export_onnx, list_images
from mtmct_reid.features import FeatureExtractor
from mtmct_reid.featureset import FeatureSet
from tests._deploy import SIZE, checkpoint_file, tiny_model

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def pcb():
    return tiny_model("pcb", "resnet18")


@pytest.fixture(scope="module")
def pcb_onnx(pcb, tmp_path_factory, small_market):
    out = tmp_path_factory.mktemp("onnx") / "pcb.onnx"
    export_onnx(pcb, out, SIZE, check_images=list_images([small_market / "query"], limit=2))
    return out


# PCB (parts), a global ResNet model and DenseNet121 (its own trunk: dense blocks, concatenations).
@pytest.mark.parametrize(
    ("name", "backbone"),
    [("pcb", "resnet18"), ("resnet50", "resnet18"), ("densenet121", "densenet121")],
)
def test_export_cli_checks_parity_on_real_images(name, backbone, small_market, tmp_path, capsys):
    net = tiny_model(name, backbone)
    ckpt = checkpoint_file(tmp_path / "m.ckpt", net)
    out = tmp_path / "m.onnx"
    argv = ["export", str(ckpt), "--out", str(out), "--check-images", str(small_market / "query")]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"output {net.feature_dim}-d" in printed and "on 5 images: max |diff|" in printed
    # Told apart from other results, so that exporting again replaces it without --force.
    assert describe_file(out) == "an ONNX model"
    onnx_model = OnnxReIDModel(out)
    assert onnx_model.metadata["model"] == name and onnx_model.metadata["image_size"] == "64x32"
    assert onnx_model.metadata["normalization"] == "in-model"
    # Any batch size: ONNX Runtime equals PyTorch's FeatureExtractor on the dataset's images.
    images = list_images([small_market / "bounding_box_test"], limit=7)
    torch_feats = FeatureExtractor(net, SIZE)(images)
    for batch in (1, 7):
        onnx_feats = FeatureExtractor.from_onnx(out, batch_size=batch)(images)
        assert onnx_feats.shape == (7, net.feature_dim)
        np.testing.assert_allclose(onnx_feats, torch_feats, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(onnx_feats, axis=1), 1.0, rtol=1e-5)


def test_onnx_extraction_equals_torch_extraction(pcb, pcb_onnx, small_market, tmp_path, capsys):
    ckpt = checkpoint_file(tmp_path / "pcb.ckpt", pcb)
    common = ["--data-dir", str(small_market), "--batch-size", "4"]
    assert cli.main(["extract", str(ckpt), "--out", str(tmp_path / "t.npz"), *common]) == 0
    argv = ["extract", "--onnx", str(pcb_onnx), "--out", str(tmp_path / "o.npz"), *common]
    assert cli.main(argv) == 0
    assert "3072-d (pcb/resnet18, 64x32)" in capsys.readouterr().out
    ours, theirs = FeatureSet.load(tmp_path / "o.npz"), FeatureSet.load(tmp_path / "t.npz")
    assert ours.metadata["engine"] == "onnxruntime"
    for side in ("query", "gallery"):
        a, b = getattr(ours, side), getattr(theirs, side)
        assert np.array_equal(a.paths, b.paths) and np.array_equal(a.pids, b.pids)
        assert np.array_equal(a.cams, b.cams) and np.array_equal(a.times, b.times)
        np.testing.assert_allclose(a.features, b.features, atol=1e-4, rtol=0)


def test_a_failed_parity_check_writes_nothing(pcb, small_market, tmp_path):
    out = tmp_path / "m.onnx"
    images = list_images([small_market / "query"], limit=2)
    with pytest.raises(ReIDError, match=r"differ by .* more than -1; .*m.onnx not written"):
        export_onnx(pcb, out, SIZE, check_images=images, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def _plain_onnx(path, size=SIZE):
    """An ONNX file of a network without this project's metadata."""
    torch.onnx.export(
        torch.nn.Conv2d(3, 4, 3),
        (torch.zeros(1, 3, *size),),
        str(path),
        dynamo=False,
        input_names=["images"],
    )
    return path


def test_bad_input_is_one_line_and_writes_nothing(pcb, pcb_onnx, small_market, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    (tmp_path / "junk.onnx").write_text("not a model")
    plain = _plain_onnx(tmp_path / "plain.onnx")
    proto = onnx.load(str(pcb_onnx))
    for entry in proto.metadata_props:
        if entry.key == PREFIX + "normalization":
            entry.value = "outside"
    onnx.save(proto, str(tmp_path / "outside.onnx"))
    out = tmp_path / "out.npz"
    data = ["--data-dir", str(small_market), "--out", str(out)]
    cases = [
        (["export", str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "o.onnx")], "not a check"),
        (["extract", "--onnx", str(tmp_path / "junk.onnx"), *data], "not an ONNX model"),
        (["extract", "--onnx", str(plain), *data], "without mtmct_reid metadata"),
        (["extract", "--onnx", str(pcb_onnx), "--image-size", "128x64", *data], "not 128x64"),
        (["extract", "--onnx", str(tmp_path / "outside.onnx"), *data], "'outside'"),
        (["extract", "--onnx", str(pcb_onnx), "--no-flip", *data], "--no-flip"),
        (["extract", *data], "either a checkpoint or --onnx"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists() and not (tmp_path / "o.onnx").exists()


def test_missing_extra_names_it(pcb_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    argv = ["extract", "--onnx", str(pcb_onnx), "--data-dir", str(tmp_path), "--out", "x.npz"]
    assert cli.main(argv) == 2
    assert "pip install 'mtmct-reid[export]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert cli.main(["export", "x.ckpt", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'mtmct-reid[export]'" in capsys.readouterr().err
