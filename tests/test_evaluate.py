"""The four evaluation modes and ``mtmct-reid evaluate``, against scores computed plainly in the test."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from mtmct_reid import cli
from mtmct_reid._io import save_npz
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSet, FeatureSide
from mtmct_reid.retrieval.evaluate import (
    MODES,
    EvaluationReport,
    FeatureSetScorer,
    evaluate_featureset,
)
from mtmct_reid.retrieval.fusion import FusionParams
from mtmct_reid.retrieval.metrics import RankingResult, evaluate_scores
from mtmct_reid.retrieval.protocol import normalise_rows
from tests import reference


def make_data(num_query=40, num_gallery=220, dim=24, seed=0):
    """Market-like features with ids, cameras and frame times, plus training labels for the ST model."""
    data = reference.market_like_features(
        num_query, num_gallery, dim, relu=False, num_train_ids=120, seed=seed
    )
    rng = np.random.default_rng(seed)
    # Unnormalised rows: the evaluation must normalise them itself.
    for side in ("query", "gallery"):
        features = data[f"{side}_features"]
        data[f"{side}_features"] = features * rng.uniform(0.5, 3.0, (len(features), 1)).astype(
            np.float32
        )
    return data


def featureset(data) -> FeatureSet:
    def side(name):
        return FeatureSide(
            features=data[f"{name}_features"].astype(np.float32),
            pids=data[f"{name}_pids"],
            cams=data[f"{name}_cams"],
            times=data[f"{name}_times"],
        )

    return FeatureSet(side("query"), side("gallery"))


def fit_st_model(data):
    from mtmct_reid.retrieval.transit import TransitTimeModel

    return TransitTimeModel.fit(data["train_pids"], data["train_cams"], data["train_times"])


def cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a.astype(np.float64) @ b.T.astype(np.float64)).astype(np.float32)


def joint_formula(similarity, probability, params):
    f0 = 1 / (1 + params.lambda0 * np.exp(-params.gamma0 * similarity.astype(np.float64)))
    f1 = 1 / (1 + params.lambda1 * np.exp(-params.gamma1 * probability.astype(np.float64)))
    return (f0 * f1).astype(np.float32)


def labels(data):
    return data["query_pids"], data["query_cams"], data["gallery_pids"], data["gallery_cams"]


def assert_same_result(got: RankingResult, expected: RankingResult, tol=1e-6):
    assert got.num_queries == expected.num_queries and got.num_valid == expected.num_valid
    assert got.mAP == pytest.approx(expected.mAP, abs=tol)
    assert got.mINP == pytest.approx(expected.mINP, abs=tol)
    np.testing.assert_allclose(got.cmc, expected.cmc, atol=tol)


@pytest.fixture(scope="module")
def data():
    return make_data()


def test_visual_mode_is_cosine_ranking(data):
    report = evaluate_featureset(featureset(data), chunk_size=7, progress=False)
    assert list(report.modes) == ["visual"]
    expected = evaluate_scores(
        cosine(data["query_features"], data["gallery_features"]), *labels(data)
    )
    assert_same_result(report.modes["visual"], expected)
    assert 0.2 < report.modes["visual"].mAP < 1.0  # clustered features: far better than chance


def test_streid_protocol_is_passed_through(data):
    report = evaluate_featureset(featureset(data), protocol="streid", progress=False)
    expected = evaluate_scores(
        cosine(data["query_features"], data["gallery_features"]), *labels(data), protocol="streid"
    )
    assert report.protocol == "streid"
    assert_same_result(report.modes["visual"], expected)


@pytest.mark.parametrize("approximate", [False, True], ids=["float32", "bfloat16"])
def test_rerank_mode_matches_the_dense_reference(data, approximate):
    report = evaluate_featureset(
        featureset(data),
        rerank=True,
        chunk_size=64,
        progress=False,
        approximate_search=approximate,
    )
    assert list(report.modes) == ["visual", "visual+rerank"]
    distance = reference.dense_rerank_features(data["query_features"], data["gallery_features"])
    assert_same_result(report.modes["visual+rerank"], evaluate_scores(-distance, *labels(data)))
    visual = evaluate_scores(
        cosine(data["query_features"], data["gallery_features"]), *labels(data)
    )
    assert_same_result(report.modes["visual"], visual)


@pytest.mark.parametrize("approximate", [False, True], ids=["float32", "bfloat16"])
def test_st_modes_match_fusion_of_the_model_probability(data, approximate):
    model = fit_st_model(data)
    params = FusionParams(lambda0=1.5, gamma0=4.0, lambda1=2.0, gamma1=30.0)
    report = evaluate_featureset(
        featureset(data),
        st_model=model,
        rerank=True,
        fusion=params,
        chunk_size=50,
        progress=False,
        approximate_search=approximate,
    )
    assert list(report.modes) == list(MODES)

    q, g = normalise_rows(data["query_features"]), normalise_rows(data["gallery_features"])
    x = np.concatenate([q, g])
    cams = np.concatenate([data["query_cams"], data["gallery_cams"]])
    times = np.concatenate([data["query_times"], data["gallery_times"]])
    probability = model.probability(cams[:, None], times[:, None], cams[None, :], times[None, :])
    joint = joint_formula(x @ x.T, probability, params)
    nq = len(q)
    assert_same_result(
        report.modes["visual+st"], evaluate_scores(joint[:nq, nq:], *labels(data)), tol=1e-5
    )
    distance = reference.re_ranking(joint[:nq, nq:], joint[:nq, :nq], joint[nq:, nq:])
    assert_same_result(
        report.modes["visual+st+rerank"], evaluate_scores(-distance, *labels(data)), tol=1e-5
    )
    # The transit times of this network are informative: fusion must help, as in st-ReID.
    assert report.modes["visual+st"].mAP > report.modes["visual"].mAP


def test_chunk_size_does_not_change_the_figures(data):
    model = fit_st_model(data)
    small = evaluate_featureset(featureset(data), st_model=model, chunk_size=3, progress=False)
    large = evaluate_featureset(featureset(data), st_model=model, chunk_size=10_000, progress=False)
    for mode in ("visual", "visual+st"):
        assert_same_result(small.modes[mode], large.modes[mode])


def test_scorer_rows_and_pairs_agree(data):
    model = fit_st_model(data)
    scorer = FeatureSetScorer(featureset(data), st_model=model)
    visual, joint = scorer.rows(5, 19, visual=True, joint=True)
    assert visual.shape == joint.shape == (14, scorer.num_total)
    rows = np.array([5, 7, 18, 18])
    cols = np.array([0, 100, 18, scorer.num_total - 1])
    pair_visual, pair_joint = scorer.pairs(rows, cols, visual=True, joint=True)
    np.testing.assert_allclose(pair_visual, visual[rows - 5, cols], atol=1e-6)
    np.testing.assert_allclose(pair_joint, joint[rows - 5, cols], atol=1e-6)
    qg_visual, qg_joint = scorer.query_gallery(5, 19)
    np.testing.assert_allclose(qg_visual, visual[:, scorer.num_query :], atol=1e-6)
    np.testing.assert_allclose(qg_joint, joint[:, scorer.num_query :], atol=1e-6)
    assert pair_visual[2] == pytest.approx(1.0, abs=1e-6)  # a sample with itself
    only_joint = scorer.rows(5, 19, visual=False, joint=True)
    np.testing.assert_array_equal(only_joint, joint)


@pytest.mark.parametrize("window_fraction", [-1.0, 2.0])  # always direct / always windowed
def test_joint_scores_equal_fusion_of_every_pair_probability(data, window_fraction):
    frames = dict(data)  # integer frame times: time differences fall exactly on bin edges
    for side in ("query", "gallery"):
        frames[f"{side}_times"] = np.round(data[f"{side}_times"] / 50) * 50
    model = fit_st_model(frames)
    params = FusionParams(lambda0=1.0, gamma0=5.0, lambda1=3.0, gamma1=40.0)
    scorer = FeatureSetScorer(
        featureset(frames), st_model=model, fusion=params, window_fraction=window_fraction
    )
    cams = np.concatenate([frames["query_cams"], frames["gallery_cams"]])
    times = np.concatenate([frames["query_times"], frames["gallery_times"]])
    probability = model.probability(cams[:, None], times[:, None], cams[None, :], times[None, :])
    assert (probability == 0).mean() > 0.5 and (probability > 0).any()  # both kinds of pairs occur
    visual, joint = scorer.rows(0, scorer.num_total, visual=True, joint=True)
    np.testing.assert_allclose(joint, joint_formula(visual, probability, params), rtol=2e-6)
    _, joint_qg = scorer.query_gallery(3, 29)
    np.testing.assert_allclose(
        joint_qg, joint_formula(visual[3:29, 40:], probability[3:29, 40:], params), rtol=2e-6
    )


def test_queries_without_valid_match_are_counted_and_logged(data, caplog):
    broken = dict(data)
    broken["query_pids"] = data["query_pids"].copy()
    broken["query_pids"][:3] = 10_000  # ids absent from the gallery
    with caplog.at_level(logging.WARNING, logger="mtmct_reid.retrieval.evaluate"):
        report = evaluate_featureset(featureset(broken), progress=False)
    assert "3 of 40 queries have no valid match" in caplog.text
    result = report.modes["visual"]
    assert (result.num_queries, result.num_valid) == (40, 37)


def test_no_camera_ids_is_explained(data):
    flat = dict(data)
    flat["query_cams"] = np.zeros_like(data["query_cams"])
    flat["gallery_cams"] = np.zeros_like(data["gallery_cams"])
    with pytest.raises(ReIDError, match=r"none of the 40 queries .*1 query camera.*ANOTHER camera"):
        evaluate_featureset(featureset(flat), progress=False)


def test_st_needs_times_and_known_cameras(data):
    model = fit_st_model(data)
    no_times = dict(data)
    no_times["query_times"] = np.full(len(data["query_times"]), np.nan)
    with pytest.raises(ReIDError, match="query_times missing/NaN.*needs a time per image"):
        evaluate_featureset(featureset(no_times), st_model=model, progress=False)
    infinite = dict(data)
    infinite["gallery_times"] = data["gallery_times"].astype(np.float64)
    infinite["gallery_times"][[2, 5]] = [np.nan, -np.inf]
    with pytest.raises(ReIDError, match=r"gallery_times has -inf at element 5, expected a finite"):
        evaluate_featureset(featureset(infinite), st_model=model, progress=False)
    unknown = dict(data)
    unknown["gallery_cams"] = data["gallery_cams"].copy()
    unknown["gallery_cams"][4] = 77
    with pytest.raises(ReIDError, match="77"):
        evaluate_featureset(featureset(unknown), st_model=model, progress=False)


def test_report_json_and_table():
    result = RankingResult(
        mAP=0.5, cmc=np.linspace(0.6, 1.0, 50), mINP=0.25, num_queries=12, num_valid=11
    )
    report = EvaluationReport("standard", {"visual": result, "visual+st+rerank": result})
    payload = report.as_json()
    assert payload["protocol"] == "standard"
    assert set(payload["modes"]) == {"visual", "visual+st+rerank"}
    assert set(payload["modes"]["visual"]) == {"mAP", "R1", "R5", "R10", "mINP", "queries"}
    assert payload["modes"]["visual"]["R1"] == pytest.approx(0.6)
    table = report.format_table().splitlines()
    assert table[0].split() == ["mode", "mAP", "R1", "R5", "R10", "mINP", "queries"]
    assert table[2].split() == [
        "visual+st+rerank",
        "50.00",
        "60.00",
        "63.27",
        "67.35",
        "25.00",
        "12",
    ]


# ---------------------------------------------------------------------------------------------
# The command line


def write_features(path: Path, data, **overrides) -> Path:
    arrays = {
        f"{side}_{column}": data[f"{side}_{column}"]
        for side in ("query", "gallery")
        for column in ("features", "pids", "cams", "times")
    }
    arrays.update(overrides)
    for key in [k for k, v in arrays.items() if v is None]:
        del arrays[key]
    save_npz(path, **arrays)
    return path


def test_cli_prints_table_and_writes_json(data, tmp_path, capsys):
    features = write_features(tmp_path / "features.npz", data)
    model_path = tmp_path / "st.npz"
    fit_st_model(data).save(model_path)
    out = tmp_path / "out" / "eval.json"
    code = cli.main(
        [
            "evaluate",
            str(features),
            "--st-model",
            str(model_path),
            "--rerank",
            "--protocol",
            "streid",
            "--json",
            str(out),
            "--chunk-size",
            "33",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split() for line in printed.splitlines() if line.startswith("visual")
    }
    assert list(rows) == list(MODES)
    payload = json.loads(out.read_text())
    assert payload["protocol"] == "streid" and list(payload["modes"]) == list(MODES)
    expected = evaluate_featureset(
        featureset(data),
        st_model=fit_st_model(data),
        rerank=True,
        protocol="streid",
        progress=False,
    )
    for mode, figures in payload["modes"].items():
        assert figures == pytest.approx(expected.modes[mode].as_dict())
        assert float(rows[mode][1]) == pytest.approx(100 * figures["mAP"], abs=0.006)
        assert all(0.0 <= figures[k] <= 1.0 for k in ("mAP", "R1", "R5", "R10", "mINP"))
    assert not list(out.parent.glob(".*"))  # no temporary file left behind


def test_cli_fusion_and_rerank_options_change_the_result(data, tmp_path, capsys):
    features = write_features(tmp_path / "features.npz", data)
    model_path = tmp_path / "st.npz"
    fit_st_model(data).save(model_path)
    outputs = []
    for extra in ([], ["--gamma1", "1", "--lambda1", "0.5"], ["--k1", "5", "--k2", "1"]):
        out = tmp_path / f"{len(outputs)}.json"
        argv = ["evaluate", str(features), "--st-model", str(model_path), "--json", str(out)]
        assert cli.main(argv + ["--rerank", "--no-progress", *extra]) == 0
        outputs.append(json.loads(out.read_text())["modes"])
    capsys.readouterr()
    assert outputs[1]["visual+st"] != outputs[0]["visual+st"]
    assert outputs[1]["visual"] == outputs[0]["visual"]
    assert outputs[2]["visual+rerank"] != outputs[0]["visual+rerank"]


def run_failing(argv, capsys) -> str:
    try:
        code = cli.main(argv)
        option_error = False
    except SystemExit as exc:  # an option refused by its argparse type (the shared input policy)
        code, option_error = exc.code, True
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    # argparse puts its usage above the one-line error; the library's errors are the line alone.
    assert len(lines) == 1 or option_error
    assert lines[-1].startswith("mtmct-reid evaluate: error: ")
    return lines[-1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gallery_pids": None}, "missing array 'gallery_pids'"),
        ({"query_cams": np.ones(3, np.int64)}, "'query_cams' has shape"),
        ({"gallery_features": np.ones((220, 5), np.float32)}, "dimension"),
        ("nan", "NaN, inf or values beyond"),
        (
            {
                "query_features": np.zeros((0, 24), np.float32),
                "query_pids": np.zeros(0, np.int64),
                "query_cams": np.zeros(0, np.int64),
                "query_times": np.zeros(0),
            },
            "empty",
        ),
    ],
)
def test_cli_rejects_bad_features_files(data, tmp_path, capsys, overrides, message):
    if overrides == "nan":
        features = data["query_features"].copy()
        features[2, 3] = np.nan
        overrides = {"query_features": features}
    path = write_features(tmp_path / "features.npz", data, **overrides)
    line = run_failing(["evaluate", str(path), "--no-progress"], capsys)
    assert message in line and str(path) in line


def test_cli_rejects_st_problems(data, tmp_path, capsys):
    model_path = tmp_path / "st.npz"
    fit_st_model(data).save(model_path)
    no_times = write_features(tmp_path / "no_times.npz", data, query_times=None)
    line = run_failing(["evaluate", str(no_times), "--st-model", str(model_path)], capsys)
    assert "query_times missing/NaN" in line and "no_times.npz" in line
    # An infinite time is not a missing one: named with its element (NaN stays "unknown").
    times = data["query_times"].astype(np.float64)
    times[1], times[3] = np.nan, np.inf
    infinite = write_features(tmp_path / "inf_times.npz", data, query_times=times)
    for argv in (["--st-model", str(model_path)], []):
        line = run_failing(["evaluate", str(infinite), "--no-progress", *argv], capsys)
        assert "inf_times.npz: 'query_times' has inf at element 3" in line, line
        assert "expected a finite time (NaN for an unknown one)" in line
        assert "missing/NaN" not in line
    cams = data["gallery_cams"].copy()
    cams[0] = 42
    unknown = write_features(tmp_path / "unknown.npz", data, gallery_cams=cams)
    line = run_failing(["evaluate", str(unknown), "--st-model", str(model_path)], capsys)
    assert "42" in line
    # Without --st-model the same files evaluate fine (times and camera 42 are not needed).
    assert cli.main(["evaluate", str(no_times), "--no-progress"]) == 0
    assert cli.main(["evaluate", str(unknown), "--no-progress"]) == 0


def test_cli_rejects_unreadable_inputs_and_bad_options(data, tmp_path, capsys):
    not_npz = tmp_path / "features.npz"
    not_npz.write_text("query,gallery\n")
    assert "not a readable .npz" in run_failing(["evaluate", str(not_npz)], capsys)
    assert "not found" in run_failing(["evaluate", str(tmp_path / "missing.npz")], capsys)
    good = write_features(tmp_path / "good.npz", data)
    assert "--chunk-size" in run_failing(["evaluate", str(good), "--chunk-size", "0"], capsys)
    assert "lambda1" in run_failing(["evaluate", str(good), "--lambda1", "-1"], capsys)
    assert "k1" in run_failing(["evaluate", str(good), "--rerank", "--k1", "0"], capsys)
    assert "not found" in run_failing(
        ["evaluate", str(good), "--st-model", str(tmp_path / "none.npz")], capsys
    )
    flat = write_features(
        tmp_path / "flat.npz",
        data,
        query_cams=np.zeros(40, np.int64),
        gallery_cams=np.zeros(220, np.int64),
    )
    assert "ANOTHER camera" in run_failing(["evaluate", str(flat)], capsys)


def test_stacked_features_are_normalised_in_place_with_the_same_figures(data):
    from mtmct_reid.retrieval.evaluate import stacked_featureset

    plain = evaluate_featureset(featureset(data), rerank=True, progress=False)
    stacked = stacked_featureset(featureset(data))
    assert np.shares_memory(FeatureSetScorer(stacked).embeddings, stacked.gallery.features)
    assert not np.shares_memory(
        FeatureSetScorer(featureset(data)).embeddings, data["query_features"]
    )
    report = evaluate_featureset(stacked, rerank=True, progress=False)
    for mode in ("visual", "visual+rerank"):
        assert_same_result(report.modes[mode], plain.modes[mode])
