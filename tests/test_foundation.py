"""Records, the features-file contract, the Market clock, atomic writes and the CLI's error contract."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mtmct_reid import cli
from mtmct_reid._io import atomic_path, save_npz, write_text
from mtmct_reid.data.market_time import (
    MARKET_SESSION_FRAMES,
    market_global_time,
    market_session_frame,
)
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSet, FeatureSide


def test_market_global_time_matches_the_session_table():
    # c2s3_000100 -> 163691 + 164677 + 100: sessions 1 and 2 of camera 2, then frame 100
    t = market_global_time(np.array([2, 1, 6]), np.array([3, 1, 4]), np.array([100, 451, 7]))
    assert t.tolist() == [328468.0, 451.0, 87551 + 131268 + 95817 + 7]


def test_market_session_frame_inverts_global_time():
    rng = np.random.default_rng(0)
    cams = rng.integers(1, 9, size=500)  # 7 and 8 are outside the table: session 1 only
    times = rng.integers(0, 400_000, size=500)
    sessions, frames = market_session_frame(cams, times)
    assert np.all(frames >= 0)
    for cam in (7, 8):
        assert np.all(sessions[cams == cam] == 1)
    np.testing.assert_array_equal(market_global_time(cams, sessions, frames), times)


def test_market_unknown_session_is_one_clear_error():
    with pytest.raises(ReIDError, match="camera 2: session 4"):
        market_global_time(np.array([2]), np.array([4]), np.array([1]))
    assert len(MARKET_SESSION_FRAMES[1]) == 6


def test_records_split_subset_concat():
    r = Records.from_columns(
        ["a.jpg", "b.jpg", "c.jpg"], [1, 2, 1], [1, 1, 2], None, ["train", "query", "gallery"]
    )
    assert r.pids.dtype == np.int64 and np.isnan(r.times).all() and not r.has_times
    assert r.split("query").paths.tolist() == ["b.jpg"]
    both = Records.concat([r.split("train"), r.split("gallery")])
    assert both.paths.tolist() == ["a.jpg", "c.jpg"] and both.num_ids == 1
    with pytest.raises(ReIDError, match="split 'test'"):
        r.split("test")
    with pytest.raises(ReIDError, match="column 'pids' has 1 rows, expected 2"):
        Records(
            paths=np.array(["a", "b"]),
            pids=np.array([1]),
            cams=np.array([1, 1]),
            times=np.zeros(2),
            splits=np.array(["train"] * 2),
        )


def _featureset(rng: np.random.Generator, nq: int = 5, ng: int = 9, dim: int = 8) -> FeatureSet:
    def side(n: int, name: str) -> FeatureSide:
        return FeatureSide(
            features=rng.normal(size=(n, dim)).astype(np.float32),
            pids=rng.integers(-1, 4, size=n),
            cams=rng.integers(1, 4, size=n),
            times=rng.uniform(0, 1e5, size=n),
            paths=np.array([f"{name}/{i}.jpg" for i in range(n)]),
        )

    return FeatureSet(side(nq, "q"), side(ng, "g"), metadata={"model": "pcb", "height": 128})


def test_featureset_round_trip(tmp_path):
    fs = _featureset(np.random.default_rng(1))
    fs.save(tmp_path / "f.npz")
    back = FeatureSet.load(tmp_path / "f.npz")
    for name in ("query", "gallery"):
        a, b = getattr(fs, name), getattr(back, name)
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.pids, b.pids)
        np.testing.assert_array_equal(a.cams, b.cams)
        np.testing.assert_array_equal(a.times, b.times)
        assert a.paths.tolist() == b.paths.tolist()
    assert back.metadata == {"model": "pcb", "height": 128}
    assert back.dim == 8
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]  # no temporary left behind


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.pop("gallery_pids"), "missing array 'gallery_pids'"),
        (lambda a: a.update(query_cams=a["query_cams"][:-1]), "'query_cams' has shape"),
        (lambda a: a.update(gallery_features=a["gallery_features"][:, :4]), "dimension 8 but"),
        (
            lambda a: a["query_features"].__setitem__((2, 1), np.nan),
            "NaN, inf or values beyond .* in 1 row",
        ),
        (lambda a: a.update(query_features=np.zeros((0, 8), np.float32)), "is empty"),
        (lambda a: a.update(query_pids=a["query_pids"] + 0.5), "expected integers"),
        (lambda a: a.update(gallery_features=np.zeros(9)), "expected 2-D"),
    ],
)
def test_featureset_bad_input_names_the_array(tmp_path, mutate, message):
    fs = _featureset(np.random.default_rng(2))
    fs.save(tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as z:
        arrays = {k: z[k] for k in z.files}
    mutate(arrays)
    save_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ReIDError, match=message):
        FeatureSet.load(tmp_path / "bad.npz")


def test_featureset_not_an_npz(tmp_path):
    (tmp_path / "f.npz").write_text("hello")
    with pytest.raises(
        ReIDError, match="not a readable .npz features file .* this file holds text"
    ):
        FeatureSet.load(tmp_path / "f.npz")
    with pytest.raises(ReIDError, match="not found"):
        FeatureSet.load(tmp_path / "missing.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ReIDError, match="single array"):
        FeatureSet.load(tmp_path / "single.npy")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "report.md", "# hi\n")
        save_npz(tmp_path / "a.npz", x=np.arange(3))
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    plain = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert plain == 0o644
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == plain
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == plain


def test_cli_reports_library_errors_in_one_line(monkeypatch, capsys):
    def explode(args):
        raise ReIDError("data/x.csv: column 'pid' must be an integer")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = next(a for a in parser._actions if a.dest == "command")
    p = sub.add_parser("explode")
    p.set_defaults(func=explode)
    assert cli.main(["explode"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "mtmct-reid explode: error: data/x.csv: column 'pid' must be an integer"
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (["evaluate", "f.npz", "--nope"], "mtmct-reid evaluate: "),
        (["st", "fit", "x", "--out", "y.npz", "--nope"], "mtmct-reid st fit: "),
        (["--nope", "evaluate", "f.npz"], "mtmct-reid: "),
    ],
)
def test_an_unknown_option_is_named_by_the_verb_it_was_given_to(argv, prefix, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"{prefix}error: unrecognized arguments: --nope"), err


def test_cli_logging_drops_lightning_adverts_only():
    import logging

    def record(name: str, message: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)

    assert not cli._not_an_advert(record("lightning.pytorch.utilities.rank_zero", "💡 Tip: try X"))
    assert cli._not_an_advert(record("lightning.pytorch.utilities.rank_zero", "GPU available"))
    assert cli._not_an_advert(record("mtmct_reid.training", "💡 not Lightning's"))
