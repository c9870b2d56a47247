"""Person search: ranking against a direct implementation, ST fusion on look-alikes, the unknown-camera
fallback, the gallery cache, and the `search` command (real images + a checkpoint, errors)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtmct_reid import cli
from mtmct_reid.data.readers import read_dataset
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSet, FeatureSide
from mtmct_reid.gallery import gallery_featureset_cached, load_gallery_features
from mtmct_reid.retrieval.fusion import FusionParams, logistic
from mtmct_reid.retrieval.search import RANKED_JOINT, RANKED_VISUAL, search_gallery
from mtmct_reid.retrieval.transit import TransitTimeModel

IMAGE_SIZE = [64, 32]


def _transit_model() -> TransitTimeModel:
    """Cameras 1..3; people walk 1 → 2 in ~2,000 frames and 2 → 3 in ~5,000."""
    rng = np.random.default_rng(0)
    pids, cams, times = [], [], []
    for pid in range(1, 41):
        start = rng.uniform(0, 100_000)
        for cam, offset in ((1, 0.0), (2, rng.normal(2_000, 150)), (3, rng.normal(7_000, 300))):
            pids.append(pid)
            cams.append(cam)
            times.append(start + offset)
    return TransitTimeModel.fit(np.array(pids), np.array(cams), np.array(times))


def _reference_search(q, q_cams, q_times, gallery, st_model, fusion, top_k, q_pids, cross_camera):
    """Straight from the definitions: cosine, logistic smoothing, a stable descending sort."""
    out = []
    g = gallery.features / np.linalg.norm(gallery.features, axis=1, keepdims=True)
    for i in range(len(q)):
        v = g @ (q[i] / np.linalg.norm(q[i]))
        scores = v
        if st_model is not None and q_cams[i] in st_model.camera_ids:
            p = np.array(
                [
                    st_model.probability(q_cams[i], q_times[i], c, t)
                    for c, t in zip(gallery.cams, gallery.times, strict=True)
                ]
            )
            scores = logistic(v, fusion.lambda0, fusion.gamma0) * logistic(
                p, fusion.lambda1, fusion.gamma1
            )
        candidates = []
        for j in range(len(gallery)):
            if cross_camera and gallery.cams[j] == q_cams[i]:
                continue
            if q_pids is not None and (
                gallery.pids[j] == -1
                or (gallery.pids[j] == q_pids[i] and gallery.cams[j] == q_cams[i])
            ):
                continue
            candidates.append(j)
        ranked = sorted(candidates, key=lambda j: (-scores[j], j))[:top_k]
        out.append((ranked, scores[ranked]))
    return out


def _random_gallery(rng: np.random.Generator, n: int, dim: int) -> FeatureSide:
    return FeatureSide(
        features=rng.normal(size=(n, dim)).astype(np.float32),
        pids=rng.integers(-1, 6, n),
        cams=rng.integers(1, 4, n),
        times=rng.uniform(0, 20_000, n),
        paths=np.array([f"g{j}.jpg" for j in range(n)]),
    )


@pytest.mark.parametrize("with_st", [False, True])
@pytest.mark.parametrize("with_pids", [False, True])
def test_ranking_matches_a_direct_implementation(with_st, with_pids):
    rng = np.random.default_rng(1)
    st_model = _transit_model() if with_st else None
    gallery = _random_gallery(rng, 60, 8)
    # Duplicated rows make exact ties, which must keep gallery order.
    gallery.features[10] = gallery.features[3]
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    queries[0] = gallery.features[3] * 2.5
    q_cams = rng.integers(1, 4, 7)
    q_times = rng.uniform(0, 20_000, 7)
    q_pids = rng.integers(1, 6, 7) if with_pids else None
    fusion = FusionParams(lambda1=1.5, gamma1=4.0)
    for cross_camera in (False, True):
        results = search_gallery(
            queries,
            q_cams,
            q_times,
            gallery,
            st_model=st_model,
            fusion=fusion,
            top_k=9,
            query_pids=q_pids,
            cross_camera=cross_camera,
            chunk_size=3,
        )
        expected = _reference_search(
            queries, q_cams, q_times, gallery, st_model, fusion, 9, q_pids, cross_camera
        )
        for result, (ranked, scores) in zip(results, expected, strict=True):
            assert result.gallery_indices.tolist() == ranked
            np.testing.assert_allclose(result.scores, scores, rtol=1e-5, atol=1e-6)
            assert result.ranked_by == (RANKED_JOINT if with_st else RANKED_VISUAL)
            assert result.paths.tolist() == [f"g{j}" + ".jpg" for j in ranked]
            np.testing.assert_array_equal(result.cameras, gallery.cams[ranked])
            if with_pids:
                assert result.labelled
                np.testing.assert_array_equal(
                    result.matches, gallery.pids[ranked] == result.query_pid
                )
            else:
                assert not result.labelled and not result.matches.any()
    # The exact duplicate of query 0's direction is first, its twin right after (gallery order).
    first = search_gallery(queries[:1], q_cams[:1], q_times[:1], gallery, top_k=2)[0]
    assert first.gallery_indices.tolist() == [3, 10]


def _lookalike_features() -> FeatureSet:
    """A person seen by camera 1 at t=10,000 and, ~2,000 frames later, by camera 2; a look-alike in
    camera 2 half a day later looks MORE like the query than the person does."""
    query = FeatureSide(
        features=np.array([[1.0, 0.0, 0.0]], np.float32),
        pids=np.array([7]),
        cams=np.array([1]),
        times=np.array([10_000.0]),
        paths=np.array(["q.jpg"]),
    )
    gallery = FeatureSide(
        features=np.array(
            [[0.97, 0.24, 0.0], [0.90, 0.0, 0.43], [0.0, 1.0, 0.0], [0.2, 0.0, 0.98]], np.float32
        ),
        pids=np.array([8, 7, 9, 7]),
        cams=np.array([2, 2, 3, 3]),
        times=np.array([50_000.0, 12_050.0, 17_000.0, 17_100.0]),
        paths=np.array(["lookalike.jpg", "person_c2.jpg", "other.jpg", "person_c3.jpg"]),
    )
    return FeatureSet(query, gallery)


def test_st_fusion_finds_the_person_a_lookalike_hides():
    features = _lookalike_features()
    q = features.query
    visual = search_gallery(q.features, q.cams, q.times, features.gallery, query_pids=q.pids)[0]
    assert visual.paths[0] == "lookalike.jpg" and not visual.matches[0]
    joint = search_gallery(
        q.features, q.cams, q.times, features.gallery, st_model=_transit_model(), query_pids=q.pids
    )[0]
    assert joint.ranked_by == RANKED_JOINT
    assert joint.paths[0] == "person_c2.jpg" and joint.matches[0]
    assert joint.st_probabilities[0] > 0
    assert joint.st_probabilities[list(joint.paths).index("lookalike.jpg")] == 0
    assert np.isnan(visual.st_probabilities).all() and np.isnan(visual.joint_scores).all()


def test_unknown_query_camera_falls_back_to_visual_with_a_warning(caplog):
    features = _lookalike_features()
    q = features.query
    queries = np.repeat(q.features, 3, axis=0)
    with caplog.at_level(logging.WARNING, logger="mtmct_reid.retrieval.search"):
        results = search_gallery(
            queries,
            [1, 9, 1],
            [10_000.0, 10_000.0, np.nan],
            features.gallery,
            st_model=_transit_model(),
        )
    assert [r.ranked_by for r in results] == [RANKED_JOINT, RANKED_VISUAL, RANKED_VISUAL]
    assert results[0].paths[0] == "person_c2.jpg"
    assert results[1].paths[0] == "lookalike.jpg"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("query 1" in w and "camera 9" in w and "visual" in w for w in warnings)
    assert any("query 2" in w and "time is unknown" in w for w in warnings)


def test_gallery_cameras_unknown_to_the_model_get_probability_zero(caplog):
    features = _lookalike_features()
    gallery = features.gallery
    odd = FeatureSide(
        gallery.features, gallery.pids, np.array([2, 2, 5, 3]), gallery.times, gallery.paths
    )
    q = features.query
    with caplog.at_level(logging.WARNING, logger="mtmct_reid.retrieval.search"):
        result = search_gallery(q.features, q.cams, q.times, odd, st_model=_transit_model())[0]
    assert result.st_probabilities[list(result.paths).index("other.jpg")] == 0
    assert any("cameras [5]" in r.getMessage() for r in caplog.records)


def test_bad_arguments_raise_one_line_errors():
    features = _lookalike_features()
    q, g = features.query, features.gallery
    with pytest.raises(ReIDError, match="3-d"):
        search_gallery(np.zeros((1, 4), np.float32), [1], [0.0], g)
    with pytest.raises(ReIDError, match="query cameras"):
        search_gallery(q.features, [1, 2], [0.0], g)
    with pytest.raises(ReIDError, match="top_k"):
        search_gallery(q.features, [1], [0.0], g, top_k=0)


# ---------------------------------------------------------------------------------------------
# Real images and a checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A checkpoint in the form 'mtmct-reid train' writes (random weights, 64x32 input)."""
    from mtmct_reid.models import build_model

    torch.manual_seed(0)
    model = build_model("pcb", 5, backbone="resnet18", weights="none")
    path = tmp_path_factory.mktemp("ckpt") / "last.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {
                "model": "pcb",
                "backbone": "resnet18",
                "num_classes": 5,
                "image_size": IMAGE_SIZE,
                "last_stride": 1,
                "num_parts": 6,
                "dropout": 0.5,
            },
        },
        path,
    )
    return path


def test_gallery_cache_is_reused_and_invalidated(tiny_network, checkpoint, tmp_path, monkeypatch):
    from mtmct_reid.features import FeatureExtractor

    calls = []
    original = FeatureExtractor.extract_records

    def counting(self, records, progress=True):
        calls.append(len(records))
        return original(self, records, progress=False)

    monkeypatch.setattr(FeatureExtractor, "extract_records", counting)
    cache = tmp_path / "gallery.npz"
    first = gallery_featureset_cached(checkpoint, tiny_network, cache, progress=False)
    gallery_size = len(read_dataset(tiny_network).split("gallery"))
    assert not first.from_cache and calls == [gallery_size] and cache.is_file()
    assert first.side.features.shape == (gallery_size, 6 * 512)
    stamp = cache.stat().st_mtime_ns

    second = gallery_featureset_cached(checkpoint, tiny_network, cache, progress=False)
    assert second.from_cache and calls == [gallery_size]
    assert cache.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.side.features, first.side.features)
    np.testing.assert_array_equal(second.side.pids, first.side.pids)
    assert list(second.side.paths) == list(first.side.paths)
    side, meta = load_gallery_features(cache)
    assert meta["model"] == "pcb" and side.features.shape == first.side.features.shape

    # Other weights (another checkpoint's bytes): the cache no longer applies.
    other = tmp_path / "other.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    weight = state["state_dict"]["model.backbone.conv1.weight"]
    # Noise, not a rescale: the BatchNorm after the convolution would undo a rescale.
    weight += 0.5 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(1))
    torch.save(state, other)
    third = gallery_featureset_cached(other, tiny_network, cache, progress=False)
    assert not third.from_cache and calls == [gallery_size, gallery_size]
    assert not np.array_equal(third.side.features, first.side.features)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_search_cli_finds_the_query_image_in_the_gallery(
    tiny_network, checkpoint, tmp_path, capsys
):
    gallery = sorted((tiny_network / "bounding_box_test").glob("*.jpg"))
    target = next(p for p in gallery if not p.name.startswith(("-1", "0000")))
    query = tmp_path / "query.jpg"
    shutil.copy(target, query)
    out = tmp_path / "ranks.png"
    cache = tmp_path / "cache.npz"
    args = ["search", "--checkpoint", str(checkpoint), "--gallery", str(tiny_network)]
    args += ["--query", str(query), "--camera", "1", "--time", "1000", "--top-k", "4"]
    args += ["--cache", str(cache), "--device", "cpu", "--out", str(out)]
    code, stdout, stderr = _run(capsys, *args)
    assert code == 0, stderr
    rows = [line for line in stdout.splitlines() if line.lstrip().startswith("1 ")]
    assert rows and rows[0].endswith(str(target.resolve()))
    assert "ranked by visual" in stdout
    with Image.open(out) as image:
        assert image.size[0] > 100 and image.size[1] > 100
    assert cache.is_file()
    # The same search again reads the cache; the image is not overwritten without --overwrite.
    code, _, stderr = _run(capsys, *args)
    assert code == 2 and "already exists" in stderr and len(stderr.strip().splitlines()) == 1
    code, stdout, _ = _run(capsys, *args, "--overwrite")
    assert code == 0 and "cached" in stdout

    # A dataset-named query brings its own id, camera and time: entries are marked.
    named = sorted((tiny_network / "query").glob("*.jpg"))[0]
    pid, cam = int(named.name[:4]), int(named.name.split("_c")[1][0])
    time = read_dataset(tiny_network).split("query").times[0]
    code, stdout, stderr = _run(
        capsys,
        "search",
        "--checkpoint",
        str(checkpoint),
        "--gallery",
        str(tiny_network),
        "--query",
        str(named),
        "--cache",
        str(cache),
        "--device",
        "cpu",
    )
    assert code == 0, stderr
    assert f"(camera {cam}, time {time:.0f})" in stdout and " match " in stdout
    ranked = [line for line in stdout.splitlines() if line.lstrip()[:1].isdigit()]
    assert len(ranked) == 10
    # The query's own camera holds no entry of its id (the evaluation protocol's junk).
    for line in ranked:
        fields = line.split()
        assert not (int(fields[1]) == cam and Path(fields[-1]).name.startswith(f"{pid:04d}_"))


def test_a_csv_manifest_is_a_gallery_like_its_folder(tiny_network, checkpoint, tmp_path, capsys):
    manifest = tmp_path / "cams.csv"
    assert cli.main(["dataset", "export", str(tiny_network), "--out", str(manifest)]) == 0
    query = sorted((tiny_network / "query").glob("*.jpg"))[0]
    outputs = []
    for gallery in (tiny_network, manifest):
        code, stdout, stderr = _run(
            capsys,
            *("search", "--checkpoint", str(checkpoint), "--gallery", str(gallery)),
            *("--query", str(query), "--cache", str(tmp_path / f"{gallery.name}.npz")),
            *("--device", "cpu", "--top-k", "5"),
        )
        assert code == 0, stderr
        ranked = [line.split() for line in stdout.splitlines() if line.lstrip()[:1].isdigit()]
        outputs.append([(fields[1], fields[2], Path(fields[-1]).name) for fields in ranked])
    assert len(outputs[0]) == 5 and outputs[0] == outputs[1]


def test_search_cli_from_a_features_file_marks_matches(tmp_path, capsys):
    features = _lookalike_features()
    path = tmp_path / "features.npz"
    features.save(path)
    st_path = tmp_path / "st.npz"
    _transit_model().save(st_path)
    code, stdout, stderr = _run(
        capsys, "search", "--features", str(path), "--query-index", "0", "--st-model", str(st_path)
    )
    assert code == 0, stderr
    assert "ranked by visual+st" in stdout
    first = next(line for line in stdout.splitlines() if line.lstrip().startswith("1 "))
    assert first.endswith("person_c2.jpg") and " yes " in first
    code, stdout, _ = _run(capsys, "search", "--features", str(path), "--query-index", "0")
    first = next(line for line in stdout.splitlines() if line.lstrip().startswith("1 "))
    assert code == 0 and first.endswith("lookalike.jpg") and " no " in first


def test_search_cli_errors_are_one_line(tiny_network, checkpoint, tmp_path, capsys):
    features = _lookalike_features()
    small = tmp_path / "features.npz"
    features.save(small)
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not an image")
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"x")
    ckpt = ["--checkpoint", str(checkpoint)]
    cases = [
        (["--gallery", str(small), "--query", str(tmp_path / "missing.jpg")] + ckpt, "not found"),
        (["--gallery", str(small), "--query", str(not_image)] + ckpt, "not a readable image"),
        (
            ["--gallery", str(small), "--query", str(next(tiny_network.glob("query/*.jpg")))]
            + ckpt,
            "3072-d features but the gallery",
        ),
        (["--features", str(small), "--query-index", "5"], "has 1 queries"),
        (["--features", str(small)], "needs --query-index"),
        (["--features", str(small), "--query-index", "0", "--out", str(existing)], "exists"),
        (["--query", str(not_image)] + ckpt, "need --gallery"),
        (["--features", str(small), "--query-index", "0", "--st-model", str(small)], "missing"),
        (
            ["--gallery", str(tiny_network), "--features", str(small), "--query-index", "0"],
            "--checkpoint",
        ),
    ]
    for argv, message in cases:
        code, stdout, stderr = _run(capsys, "search", *argv)
        assert code == 2, (argv, stderr)
        assert message in stderr, (argv, stderr)
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--camera", "1", "2", "3"], "--camera: 3 values for 2 query images"),
        (["--time", "1", "2", "3"], "--time: 3 values for 2 query images"),
    ],
)
def test_search_cli_checks_per_query_options_before_any_work(
    tiny_network, checkpoint, tmp_path, capsys, monkeypatch, extra, message
):
    # A count mismatch is refused before the model is loaded or the gallery extracted.
    import mtmct_reid.gallery
    import mtmct_reid.models.checkpoint

    work = []
    monkeypatch.setattr(
        mtmct_reid.gallery, "gallery_featureset_cached", lambda *a, **k: work.append("gallery")
    )
    monkeypatch.setattr(
        mtmct_reid.models.checkpoint,
        "load_model_from_checkpoint",
        lambda *a, **k: work.append("model"),
    )
    query = str(next(tiny_network.glob("query/*.jpg")))
    argv = ["search", "--checkpoint", str(checkpoint), "--gallery", str(tiny_network)]
    argv += ["--query", query, query, "--cache", str(tmp_path / "cache.npz"), *extra]
    code, _, stderr = _run(capsys, *argv)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert work == [] and not (tmp_path / "cache.npz").exists()


def test_search_cli_checks_query_index_before_extracting_the_gallery(
    tiny_network, checkpoint, tmp_path, capsys, monkeypatch
):
    import mtmct_reid.gallery

    work = []
    monkeypatch.setattr(
        mtmct_reid.gallery, "gallery_featureset_cached", lambda *a, **k: work.append("gallery")
    )
    small = tmp_path / "features.npz"
    _lookalike_features().save(small)
    argv = ["search", "--checkpoint", str(checkpoint), "--gallery", str(tiny_network)]
    argv += ["--features", str(small), "--query-index", "7"]
    code, _, stderr = _run(capsys, *argv)
    assert code == 2 and "--query-index 7:" in stderr and "has 1 queries" in stderr
    assert work == []


def test_a_plain_folder_of_images_is_a_gallery(tiny_network, tmp_path, caplog):
    from mtmct_reid.gallery import read_gallery_records

    named = read_gallery_records(tiny_network / "bounding_box_test")
    expected = read_dataset(tiny_network).split("gallery")
    order = np.argsort(expected.paths)
    assert [Path(p).name for p in named.paths] == [Path(p).name for p in expected.paths[order]]
    np.testing.assert_array_equal(named.pids, expected.pids[order])
    np.testing.assert_array_equal(named.cams, expected.cams[order])
    np.testing.assert_array_equal(named.times, expected.times[order])

    own = tmp_path / "frames"
    own.mkdir()
    for name in ("entrance.png", "lobby.png"):
        Image.new("RGB", (16, 32), (90, 20, 20)).save(own / name)
    with caplog.at_level(logging.WARNING, logger="mtmct_reid.gallery"):
        unlabelled = read_gallery_records(own)
    assert len(unlabelled) == 2 and (unlabelled.cams == -1).all() and (unlabelled.pids == 0).all()
    assert np.isnan(unlabelled.times).all()
    assert any("visual search only" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--query-index", "99999999999999999999"),
        ("--query-index", "-1"),
        ("--camera", "99999999999999999999"),
        ("--camera", "-99999999999999999999"),
        ("--top-k", "0"),
        ("--time", "nan"),
    ],
)
def test_search_cli_refuses_integers_beyond_int64_in_one_line(tmp_path, capsys, option, value):
    path = tmp_path / "features.npz"
    _lookalike_features().save(path)
    before = path.read_bytes()
    argv = ["search", "--features", str(path), "--query-index", "0", option, value]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    stderr = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in stderr
    assert (
        stderr.strip().splitlines()[-1].startswith(f"mtmct-reid search: error: argument {option}")
    )
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]
