"""The transit-time model against a plain implementation of st-ReID's method (the rules in
mtmct_reid/retrieval/transit.py's module documentation), on random and simulated data."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.transit import TransitTimeModel

# ---------------------------------------------------------------------------------------------
# A plain reference, written from the definition


def reference_fit(pids, cams, times, bin_width, sigma_bins, truncate):
    """Dict of visits, Python loops over identities and visit pairs, np.convolve, normalise."""
    camera_list = sorted({int(c) for c in cams})
    column = {cam: i for i, cam in enumerate(camera_list)}
    images = defaultdict(list)
    for pid, cam, t in zip(pids, cams, times, strict=True):
        if pid > 0:
            images[(int(pid), int(cam))].append(float(t))
    visits = defaultdict(list)
    for (pid, cam), ts in images.items():
        visits[pid].append((cam, sum(ts) / len(ts)))
    entries = []  # (later, earlier, bin, weight)
    for pid_visits in visits.values():
        for a in range(len(pid_visits)):
            for b in range(a + 1, len(pid_visits)):
                (cam_a, t_a), (cam_b, t_b) = pid_visits[a], pid_visits[b]
                delta = abs(t_a - t_b)
                bin_index = math.floor(delta / bin_width)
                if t_a > t_b:
                    entries.append((cam_a, cam_b, bin_index, 1.0))
                elif t_b > t_a:
                    entries.append((cam_b, cam_a, bin_index, 1.0))
                else:
                    entries.append((cam_a, cam_b, bin_index, 0.5))
                    entries.append((cam_b, cam_a, bin_index, 0.5))
    radius = int(truncate * sigma_bins + 0.5)
    num_bins = max(e[2] for e in entries) + radius + 1
    c = len(camera_list)
    counts = np.zeros((c, c, num_bins))
    ids = np.zeros((c, c), dtype=np.int64)
    for later, earlier, bin_index, weight in entries:
        counts[column[later], column[earlier], bin_index] += weight
        ids[column[later], column[earlier]] += 1
    if radius == 0:
        kernel = np.ones(1)
    else:
        offsets = np.arange(-radius, radius + 1)
        kernel = np.exp(-0.5 * (offsets / sigma_bins) ** 2)
    probabilities = np.zeros_like(counts)
    for i in range(c):
        for j in range(c):
            if counts[i, j].sum() > 0:
                smoothed = np.convolve(counts[i, j], kernel)[radius : radius + num_bins]
                probabilities[i, j] = smoothed / smoothed.sum()
    return camera_list, counts, probabilities, ids


def reference_probability(model, cam_a, t_a, cam_b, t_b):
    """One pair at a time, straight from the lookup rule."""
    cams = model.camera_ids.tolist()
    if cam_a == cam_b:
        return 0.0
    i, j = cams.index(cam_a), cams.index(cam_b)
    bin_index = math.floor(abs(t_a - t_b) / model.bin_width)
    if bin_index >= model.num_bins:
        return 0.0
    p = model.probabilities
    if t_a > t_b:
        return p[i, j, bin_index]
    if t_b > t_a:
        return p[j, i, bin_index]
    return 0.5 * (p[i, j, bin_index] + p[j, i, bin_index])


def random_records(seed, camera_ids=(2, 3, 7, 11, 20), num_ids=60, spread=30_000):
    """Ids seen in 1–4 cameras, 1–3 integer-timed images per visit, some tied visits, junk rows."""
    rng = np.random.default_rng(seed)
    pids, cams, times = [], [], []
    for pid in range(1, num_ids + 1):
        visited = rng.choice(camera_ids, size=int(rng.integers(1, 5)), replace=False)
        start = int(rng.integers(0, 200_000))
        tied = rng.random() < 0.15
        for cam in visited:
            centre = start if tied else start + int(rng.integers(-spread, spread))
            n_images = 1 if tied else int(rng.integers(1, 4))
            for _ in range(n_images):
                pids.append(pid)
                cams.append(int(cam))
                times.append(centre + (0 if tied else int(rng.integers(0, 40))))
    # Junk and distractors in every camera, at times that would add transits if they counted.
    for _ in range(25):
        pids.append(int(rng.choice([-1, 0])))
        cams.append(int(rng.choice(camera_ids)))
        times.append(int(rng.integers(0, 600_000)))
    order = rng.permutation(len(pids))
    return (
        np.asarray(pids)[order],
        np.asarray(cams)[order],
        np.asarray(times, dtype=np.float64)[order],
    )


# ---------------------------------------------------------------------------------------------
# Fitting


@pytest.mark.parametrize(
    ("seed", "bin_width", "sigma_bins", "truncate"),
    [(0, 100.0, 50.0, 3.0), (1, 7.5, 2.0, 2.5), (2, 250.0, 0.0, 3.0), (3, 100.0, 4.3, 1.0)],
)
def test_fit_matches_reference(seed, bin_width, sigma_bins, truncate):
    pids, cams, times = random_records(seed)
    model = TransitTimeModel.fit(
        pids, cams, times, bin_width=bin_width, sigma_bins=sigma_bins, truncate=truncate
    )
    cameras, counts, probabilities, ids = reference_fit(
        pids, cams, times, bin_width, sigma_bins, truncate
    )
    assert model.camera_ids.tolist() == cameras
    assert model.counts.shape == counts.shape
    np.testing.assert_array_equal(model.counts, counts)
    np.testing.assert_array_equal(model.pair_ids, ids)
    np.testing.assert_allclose(model.probabilities, probabilities, rtol=1e-9, atol=1e-15)
    # Ties were generated, so some pair holds half counts.
    assert np.any(model.counts % 1 == 0.5)
    sums = model.probabilities.sum(axis=2)
    np.testing.assert_allclose(sums[model.pair_ids > 0], 1.0)
    assert np.all(sums[model.pair_ids == 0] == 0)
    assert np.all(np.diagonal(sums) == 0)


def test_bins_reach_past_the_largest_difference_by_the_smoothing_radius():
    # Two identities: 1→2 after 12,345 frames, 2→1 after 40 frames.
    model = TransitTimeModel.fit([5, 5, 6, 6], [1, 2, 2, 1], [1000.0, 13345.0, 50.0, 90.0])
    assert model.num_bins == 123 + 150 + 1
    later2 = model.camera_index(2)
    # Smoothing loses nothing at the far end: the kernel around bin 123 is entirely inside.
    assert model.probabilities[later2, 0, 123] == model.probabilities[later2, 0].max()
    assert model.probabilities[later2, 0, -1] > 0
    # Near bin 0 the mass below zero is dropped (no reflection), then the pair renormalised.
    earlier2 = model.probabilities[0, later2]
    assert earlier2.argmax() == 0
    assert np.isclose(earlier2.sum(), 1.0)


def test_absent_cameras_are_not_visits_at_time_zero():
    # Identity 9 is seen in cameras 1 and 2 only; the reference bug would add 1→3 and 2→3 transits.
    model = TransitTimeModel.fit([9, 9, 9], [1, 2, 2], [50_000.0, 52_000.0, 52_100.0], sigma_bins=0)
    ids = {
        (int(a), int(b)): int(model.pair_ids[i, j])
        for i, a in enumerate(model.camera_ids)
        for j, b in enumerate(model.camera_ids)
    }
    assert ids == {(1, 1): 0, (1, 2): 0, (2, 1): 1, (2, 2): 0}
    # The visit in camera 2 is the mean of its two images: 52,050 → Δ = 2,050 → bin 20.
    assert model.counts[1, 0].nonzero()[0].tolist() == [20]
    assert model.probability(2, 52_050.0, 1, 50_000.0) == pytest.approx(1.0)


def test_fit_knows_extra_cameras_without_visits(caplog):
    model = TransitTimeModel.fit([1, 1], [1, 2], [0.0, 500.0], camera_ids=[1, 2, 5])
    assert model.camera_ids.tolist() == [1, 2, 5]
    assert model.probability(5, 100.0, 1, 0.0) == 0.0
    assert "[5]" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pids": [1, 1], "cams": [3, 3], "times": [0.0, 5.0]}, "only 1 camera(s) ([3])"),
        ({"pids": [1, 1], "cams": [1, 2], "times": [0.0, np.nan]}, "'times' is missing"),
        ({"pids": [1, 2], "cams": [1, 2], "times": [0.0, 9.0]}, "no identity (of 2) appears"),
        ({"pids": [1, 2, 3], "cams": [1, 2], "times": [0.0, 9.0]}, "'cams' has 2 rows, expected 3"),
        ({"pids": [1, 1], "cams": [1, 2], "times": ["a", "b"]}, "'times' has dtype"),
        (
            {"pids": [1, 1], "cams": [1, 2], "times": [0.0, 1e12]},
            "use a larger bin width",
        ),
        ({"pids": [1, 1], "cams": [1, 2], "times": [0.0, 1.0], "bin_width": 0}, "bin_width"),
        ({"pids": [1, 1], "cams": [1, 2], "times": [0.0, 1.0], "sigma_bins": -1}, "sigma_bins"),
        (
            {"pids": [1, 1], "cams": [1, 7], "times": [0.0, 1.0], "camera_ids": [1, 2]},
            "camera 7 of 'cams' is not in camera_ids",
        ),
    ],
)
def test_fit_rejects_bad_input_in_one_line(kwargs, message):
    with pytest.raises(ReIDError) as info:
        TransitTimeModel.fit(**kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_from_records_uses_the_training_split_only():
    pids, cams, times = random_records(4)
    n = len(pids)
    train = Records.from_columns([f"{i}.jpg" for i in range(n)], pids, cams, times, ["train"] * n)
    # Test identities with wildly different transits must not change the model.
    test = Records.from_columns(
        ["q.jpg", "g.jpg", "g2.jpg"],
        [500, 500, 500],
        [2, 3, 99],
        [0.0, 9e5, 5.0],
        ["query", "gallery", "gallery"],
    )
    model = TransitTimeModel.from_records(Records.concat([train, test]))
    alone = TransitTimeModel.fit(pids, cams, times)
    np.testing.assert_array_equal(model.counts[:5, :5], alone.counts)
    np.testing.assert_array_equal(model.probabilities[:5, :5], alone.probabilities)
    assert model.camera_ids.tolist() == [2, 3, 7, 11, 20, 99]


def test_from_records_explains_missing_times_single_camera_and_empty_split():
    no_times = Records.from_columns(["a", "b"], [1, 1], [1, 2], None, ["train", "train"])
    with pytest.raises(ReIDError, match=r"^net: 2 of 2 'train' images have no time"):
        TransitTimeModel.from_records(no_times, source="net")
    one_camera = Records.from_columns(
        ["a", "b", "c"], [1, 1, 2], [4, 4, 5], [0, 1, 2], ["train", "train", "query"]
    )
    with pytest.raises(ReIDError, match="all come from camera 4; transit times need at least two"):
        TransitTimeModel.from_records(one_camera)
    no_train = Records.from_columns(["a"], [1], [1], [0.0], ["query"])
    with pytest.raises(ReIDError, match="'train' split is empty"):
        TransitTimeModel.from_records(no_train)


# ---------------------------------------------------------------------------------------------
# Lookup


@pytest.fixture(scope="module")
def fitted():
    pids, cams, times = random_records(7)
    return TransitTimeModel.fit(pids, cams, times, bin_width=100.0, sigma_bins=6.0)


def _random_pairs(model, rng, n):
    cams = rng.choice(model.camera_ids, size=n)
    times = rng.integers(0, 120_000, size=n).astype(np.float64)
    # Equal times across cameras (ties), exact bin edges, and differences past the table.
    times[: n // 6] = 50_000.0
    times[n // 6 : n // 3] = 50_000.0 + model.bin_width * rng.integers(-40, 40, n // 3 - n // 6)
    times[-3:] = [1e9, -1e9, 50_000.0 + model.num_bins * model.bin_width]
    return cams, times


def test_probability_matches_pairwise_reference(fitted):
    rng = np.random.default_rng(0)
    q_cams, q_times = _random_pairs(fitted, rng, 60)
    g_cams, g_times = _random_pairs(fitted, rng, 70)
    matrix = fitted.probability(
        q_cams[:, None], q_times[:, None], g_cams[None, :], g_times[None, :]
    )
    assert matrix.dtype == np.float32 and matrix.shape == (60, 70)
    expected = np.array(
        [
            [
                reference_probability(fitted, qc, qt, gc, gt)
                for gc, gt in zip(g_cams, g_times, strict=True)
            ]
            for qc, qt in zip(q_cams, q_times, strict=True)
        ]
    )
    np.testing.assert_allclose(matrix, expected, rtol=1e-6, atol=0)
    # The cases the random draw was built to cover all occur.
    same_camera = q_cams[:, None] == g_cams[None, :]
    tie = (q_times[:, None] == g_times[None, :]) & ~same_camera
    assert same_camera.any() and tie.any() and (expected[~same_camera] > 0).any()
    assert np.all(matrix[same_camera] == 0)
    assert matrix[-1, -2] == 0  # about 1e9 apart: past the last bin


def test_probability_is_symmetric_and_broadcasts(fitted):
    rng = np.random.default_rng(1)
    cams_a, times_a = _random_pairs(fitted, rng, 200)
    cams_b, times_b = _random_pairs(fitted, rng, 200)
    forward = fitted.probability(cams_a, times_a, cams_b, times_b)
    backward = fitted.probability(cams_b, times_b, cams_a, times_a)
    np.testing.assert_array_equal(forward, backward)
    matrix = fitted.probability(cams_a[:, None], times_a[:, None], cams_b[None], times_b[None])
    np.testing.assert_array_equal(np.diagonal(matrix), forward)
    # Cameras and times may broadcast differently: one camera against a [n] time row.
    row = fitted.probability(cams_a[0], times_a[0], cams_b, times_b)
    np.testing.assert_array_equal(row, matrix[0])
    scalar = fitted.probability(
        int(cams_a[5]), float(times_a[5]), int(cams_b[5]), float(times_b[5])
    )
    assert scalar.shape == () and scalar == forward[5]


def test_unknown_camera_and_missing_time_are_named(fitted):
    with pytest.raises(ReIDError, match=r"^cams_b: camera 99 is not in the transit-time model"):
        fitted.probability([2, 3], [0.0, 1.0], [3, 99], [5.0, 6.0])
    with pytest.raises(ReIDError, match=r"^features.npz query_cams: camera 4 is not"):
        fitted.check_cameras(np.array([2, 4, 4]), where="features.npz query_cams")
    with pytest.raises(ReIDError, match=r"^times_a: NaN/inf time"):
        fitted.probability([2], [np.nan], [3], [5.0])
    fitted.check_cameras(fitted.camera_ids)


# ---------------------------------------------------------------------------------------------
# Files


def test_save_load_round_trip(fitted, tmp_path: Path):
    path = tmp_path / "models" / "st.npz"
    fitted.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["st.npz"]  # no temporary left behind
    with np.load(path, allow_pickle=False) as npz:
        assert {"probabilities", "counts", "camera_ids", "pair_ids", "bin_width"} <= set(npz.files)
    loaded = TransitTimeModel.load(path)
    for name in ("camera_ids", "probabilities", "counts", "pair_ids"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(fitted, name))
    assert (loaded.bin_width, loaded.sigma_bins, loaded.truncate) == (100.0, 6.0, 3.0)
    cams = fitted.camera_ids[[0, 1, 2, 3]]
    times = np.array([0.0, 3000.0, 3000.0, 9000.0])
    np.testing.assert_array_equal(
        loaded.probability(cams[:, None], times[:, None], cams[None], times[None]),
        fitted.probability(cams[:, None], times[:, None], cams[None], times[None]),
    )


def test_load_names_the_file_and_array(fitted, tmp_path: Path):
    with pytest.raises(ReIDError, match="transit-time model file not found"):
        TransitTimeModel.load(tmp_path / "absent.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not a zip")
    with pytest.raises(ReIDError, match=r"garbage.npz: not a readable .npz"):
        TransitTimeModel.load(garbage)

    good = tmp_path / "good.npz"
    fitted.save(good)
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}

    def broken(name, **changes):
        """A copy of the good file with some arrays replaced (or dropped when given None)."""
        replaced = {**arrays, **changes}
        path = tmp_path / f"{name}.npz"
        np.savez(path, **{k: v for k, v in replaced.items() if v is not None})
        return path

    later, earlier = np.argwhere(arrays["pair_ids"] > 0)[0]
    bad_rows = arrays["probabilities"].copy()
    bad_rows[later, earlier] *= 2
    cases = [
        (broken("no_counts", counts=None), "missing array 'counts'"),
        (
            broken("rows", probabilities=bad_rows),
            "array 'probabilities' has a camera pair not summing",
        ),
        (
            broken("shape", pair_ids=np.zeros((2, 2), np.int64)),
            "array 'pair_ids' must be integers of shape",
        ),
        (broken("version", format_version=np.array(9)), "array 'format_version' is 9"),
        (broken("cams", camera_ids=arrays["camera_ids"][::-1]), "array 'camera_ids' must hold"),
        (broken("width", bin_width=np.array(-1.0)), "bin_width must be > 0"),
    ]
    for path, message in cases:
        with pytest.raises(ReIDError) as info:
            TransitTimeModel.load(path)
        assert str(path) in str(info.value) and message in str(info.value), str(info.value)


# ---------------------------------------------------------------------------------------------
# Recovering known transit times


def test_recovers_simulated_transit_means():
    """People walk 1 → 2 → 3 with Gaussian transits of known means; the fit finds those means."""
    rng = np.random.default_rng(11)
    true = {(2, 1): (30_000.0, 3_000.0), (3, 2): (45_000.0, 4_000.0)}
    pids, cams, times = [], [], []
    for pid in range(1, 401):
        t1 = rng.uniform(0, 300_000)
        t2 = t1 + rng.normal(*true[(2, 1)])
        t3 = t2 + rng.normal(*true[(3, 2)])
        for cam, centre in ((1, t1), (2, t2), (3, t3)):
            offsets = rng.integers(0, 30, size=int(rng.integers(2, 6)))
            offsets = offsets - offsets.mean()  # the visit's mean time is exactly its centre
            for off in offsets:
                pids.append(pid)
                cams.append(cam)
                times.append(centre + off)
    model = TransitTimeModel.fit(np.array(pids), np.array(cams), np.array(times))
    means = model.mean_transit()
    index = {int(c): i for i, c in enumerate(model.camera_ids)}
    # 400 identities: standard error of a mean ≤ 5,000 / 20 = 250 frames.
    assert means[index[2], index[1]] == pytest.approx(30_000.0, abs=750)
    assert means[index[3], index[2]] == pytest.approx(45_000.0, abs=750)
    assert means[index[3], index[1]] == pytest.approx(75_000.0, abs=750)
    # Nobody walks backwards: those pairs are unobserved and have probability 0.
    for later, earlier in ((1, 2), (2, 3), (1, 3)):
        assert model.pair_ids[index[later], index[earlier]] == 0
        assert np.isnan(means[index[later], index[earlier]])
        assert model.probability(later, 80_000.0, earlier, 50_000.0) == 0
    # The most probable delay is near the true mean, and a far delay is far less probable.
    peak = model.probabilities[index[2], index[1]].argmax() * model.bin_width
    assert peak == pytest.approx(30_000.0, abs=1_500)
    assert model.probability(2, 130_000.0, 1, 100_000.0) > 20 * model.probability(
        2, 160_000.0, 1, 100_000.0
    )


def test_recovers_synthetic_network_ground_truth(tiny_network: Path):
    """On the synthetic network's training labels, observed pairs are ones the walks produce and the
    empirical transit means agree with the ground truth's."""
    from mtmct_reid.data.synth import load_ground_truth, transit_ground_truth

    gt = load_ground_truth(tiny_network)
    images = gt["images"]
    train = np.asarray(images["split"]) == "train"
    pids = np.asarray(images["pid"])[train]
    cams = np.asarray(images["camera"])[train]
    times = np.asarray(images["time"], dtype=np.float64)[train]
    model = TransitTimeModel.fit(pids, cams, times, sigma_bins=0.0)

    grid = np.arange(0, 400_000, 10.0)
    density = transit_ground_truth(gt, grid)
    checked = 0
    for i, later in enumerate(model.camera_ids):
        for j, earlier in enumerate(model.camera_ids):
            n = int(model.pair_ids[i, j])
            if i == j or n == 0:
                continue
            truth = density[(int(later), int(earlier))]
            mass = truth.sum() * 10.0
            assert mass == pytest.approx(1.0, abs=0.02), (later, earlier)
            true_mean = (truth * grid).sum() * 10.0 / mass
            true_std = math.sqrt((truth * (grid - true_mean) ** 2).sum() * 10.0 / mass)
            counts = model.counts[i, j]
            fitted_mean = (
                counts * (np.arange(counts.size) + 0.5) * model.bin_width
            ).sum() / counts.sum()
            assert abs(fitted_mean - true_mean) < 4 * true_std / math.sqrt(n) + model.bin_width, (
                later,
                earlier,
            )
            checked += 1
    assert checked >= 3


# ---------------------------------------------------------------------------------------------
# mtmct-reid st fit


def _ground_truth_records(root: Path) -> Records:
    from mtmct_reid.data.synth import load_ground_truth

    images = load_ground_truth(root)["images"]
    return Records.from_columns(
        [str(root / p) for p in images["path"]],
        images["pid"],
        images["camera"],
        images["time"],
        images["split"],
        root=root,
    )


@pytest.fixture
def fake_reader(monkeypatch):
    """Stand in for the dataset reader, so the CLI's own handling is tested on chosen records."""
    import sys
    import types

    module = types.ModuleType("mtmct_reid.data.readers")
    module.calls = []
    module.records = None

    def read_dataset(root, layout=None, pattern=None):
        module.calls.append((Path(root), layout, pattern))
        return module.records

    module.read_dataset = read_dataset
    monkeypatch.setitem(sys.modules, "mtmct_reid.data.readers", module)
    return module


def test_st_fit_cli_fits_the_training_split_and_reports_it(
    fake_reader, tiny_network: Path, tmp_path: Path, capsys
):
    from mtmct_reid.cli import main

    records = _ground_truth_records(tiny_network)
    fake_reader.records = records
    out = tmp_path / "st.npz"
    rc = main(
        [
            "st",
            "fit",
            str(tiny_network),
            "--out",
            str(out),
            "--layout",
            "market1501",
            "--bin-width",
            "50",
            "--sigma",
            "20",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert fake_reader.calls == [(tiny_network, "market1501", None)]
    model = TransitTimeModel.load(out)
    expected = TransitTimeModel.from_records(records, bin_width=50.0, sigma_bins=20.0)
    np.testing.assert_array_equal(model.probabilities, expected.probabilities)
    train = records.split("train")
    assert f"fitted on the train split only: {np.unique(train.pids).size} identities" in text
    assert f"camera pairs observed: {model.num_observed_pairs} of 12 ordered pairs" in text
    assert f"wrote {out}" in text


def test_st_fit_cli_one_line_errors(fake_reader, tmp_path: Path, capsys):
    from mtmct_reid.cli import main

    fake_reader.records = Records.from_columns(
        ["a.jpg", "b.jpg"], [1, 1], [1, 2], None, ["train", "train"]
    )
    out = tmp_path / "st.npz"
    assert main(["st", "fit", "mydata", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mtmct-reid st: error: mydata: 2 of 2 'train' images have no time")
    assert err.count("\n") == 1

    fake_reader.records = Records.from_columns(
        ["a.jpg", "b.jpg", "c.jpg"],
        [1, 2, 3],
        [6, 6, 1],
        [1.0, 2.0, 3.0],
        ["train", "train", "query"],
    )
    assert main(["st", "fit", "mydata", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "mydata: the 'train' images all come from camera 6" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_st_fit_cli_on_the_synthetic_network_with_the_real_reader(
    tiny_network: Path, tmp_path: Path
):
    pytest.importorskip("mtmct_reid.data.readers")
    from mtmct_reid.cli import main

    out = tmp_path / "st.npz"
    assert main(["st", "fit", str(tiny_network), "--out", str(out)]) == 0
    model = TransitTimeModel.load(out)
    # The reader's Market clock gives back the generated times: the same model as from the truth.
    expected = TransitTimeModel.from_records(_ground_truth_records(tiny_network))
    np.testing.assert_array_equal(model.camera_ids, expected.camera_ids)
    np.testing.assert_array_equal(model.counts, expected.counts)


def _manifest(tmp_path: Path, times: list[float]) -> Path:
    """A training manifest of three identities over three cameras (with empty image files)."""
    rows = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 3)]
    lines = ["path,pid,camera,time,split"]
    for number, ((pid, cam), time) in enumerate(zip(rows, times, strict=True)):
        (tmp_path / f"{number}.jpg").write_bytes(b"")
        lines.append(f"{number}.jpg,{pid},{cam},{time!r},train")
    path = tmp_path / "m.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("times", "options", "message"),
    [
        # One time of -1e9 would need 10 M bins per pair: refused, naming who made it.
        (
            [0.0, 500, 100, 900, 50, -1e9],
            [],
            "time difference 1e+09 (identity 3: mean time 50 in camera 1, -1e+09 in camera 3)",
        ),
        ([0.0, 500, 100, 900, 50, 300], ["--bin-width", "1e-320"], "needs inf bins"),
        ([0.0, 500, 100, 900, 50, 300], ["--sigma", "1e300"], "needs 3e+300 bins"),
        ([0.0, 500, 100, 900, 50, 300], ["--bin-width", "1e400"], "argument --bin-width"),
        ([0.0, 500, 100, 900, 50, 300], ["--sigma", "nan"], "argument --sigma"),
    ],
)
def test_st_fit_cli_bounds_the_model_size_in_one_line(tmp_path, capsys, times, options, message):
    from mtmct_reid.cli import main

    manifest = _manifest(tmp_path, times)
    files = sorted(tmp_path.iterdir())
    out = tmp_path / "st.npz"
    try:
        code = main(["st", "fit", str(manifest), "--out", str(out), *options])
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert message in last and len(last) < 400  # no 300-digit numbers
    assert sorted(tmp_path.iterdir()) == files  # nothing written


def test_st_fit_accepts_the_same_network_without_the_outlier(tmp_path, capsys):
    from mtmct_reid.cli import main

    manifest = _manifest(tmp_path, [0.0, 500, 100, 900, 50, 300])
    out = tmp_path / "st.npz"
    assert main(["st", "fit", str(manifest), "--out", str(out)]) == 0
    model = TransitTimeModel.load(out)
    assert (
        model.num_bins == 8 + 150 + 1
    )  # the largest difference (800) in bins of 100, plus smoothing


def test_a_model_records_the_unit_of_its_times(tiny_network: Path, tmp_path: Path, capsys):
    from mtmct_reid.cli import main
    from mtmct_reid.data.readers import read_dataset, write_manifest

    # Market names number frames; a manifest's times have no stated unit.
    records = read_dataset(tiny_network)
    assert records.time_unit == "frames" and records.split("train").time_unit == "frames"
    assert main(["st", "fit", str(tiny_network), "--out", str(tmp_path / "frames.npz")]) == 0
    assert TransitTimeModel.load(tmp_path / "frames.npz").time_unit == "frames"
    write_manifest(records, tmp_path / "m.csv")
    assert main(["st", "fit", str(tmp_path / "m.csv"), "--out", str(tmp_path / "any.npz")]) == 0
    assert TransitTimeModel.load(tmp_path / "any.npz").time_unit == ""
    capsys.readouterr()
    # A file written before the unit was recorded reads as unknown; a unit not known is one line.
    with np.load(tmp_path / "frames.npz") as npz:
        arrays = dict(npz)
    np.savez(tmp_path / "older.npz", **{k: v for k, v in arrays.items() if k != "time_unit"})
    assert TransitTimeModel.load(tmp_path / "older.npz").time_unit == ""
    np.savez(tmp_path / "bad.npz", **{**arrays, "time_unit": np.array("hours")})
    with pytest.raises(ReIDError, match="bad.npz: array 'time_unit' must be one of '', 'frames'"):
        TransitTimeModel.load(tmp_path / "bad.npz")
