"""Figures: the transit grid and rank lists render, save as PNGs and put colours where they belong."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtmct_reid.cli import main
from mtmct_reid.errors import ReIDError
from mtmct_reid.report.plots import (
    figure_to_image_array,
    format_caption,
    plot_rank_list,
    plot_rank_lists,
    plot_transit_grid,
)
from mtmct_reid.retrieval.transit import TransitTimeModel


@pytest.fixture(scope="module")
def model() -> TransitTimeModel:
    """Four cameras; people walk 1 → 2 → 4 (camera 3 is only ever seen alone)."""
    rng = np.random.default_rng(3)
    pids, cams, times = [], [], []
    for pid in range(1, 41):
        t = rng.uniform(0, 50_000)
        for cam, gap in ((1, 0.0), (2, rng.normal(8_000, 800)), (4, rng.normal(5_000, 500))):
            t += gap
            pids += [pid, pid]
            cams += [cam, cam]
            times += [t, t + 10]
    pids.append(99)
    cams.append(3)
    times.append(1234.0)
    return TransitTimeModel.fit(np.array(pids), np.array(cams), np.array(times), sigma_bins=10)


def _pixel(image: np.ndarray, fig, x: float, y: float) -> np.ndarray:
    """RGB at display coordinates (origin bottom-left, as matplotlib reports them)."""
    height = image.shape[0]
    return image[int(round(height - y)), int(round(x))].astype(int)


def _cell_face(image, fig, ax) -> np.ndarray:
    box = ax.get_window_extent()
    return _pixel(image, fig, box.x0 + 0.15 * box.width, box.y0 + 0.2 * box.height)


def test_transit_grid_png_cells_and_ground_truth(model, tmp_path: Path):
    calls = []

    def truth(later, earlier, dt):
        calls.append((later, earlier))
        if (later, earlier) == (2, 1):
            return np.exp(-0.5 * ((dt - 8_000) / 800) ** 2) / (800 * math.sqrt(2 * math.pi))
        return None

    out = tmp_path / "plots" / "grid.png"
    fig = plot_transit_grid(model, ground_truth=truth, out=out)
    assert len(fig.axes) == 16
    with Image.open(out) as png:
        assert png.format == "PNG"
        width, height = png.size
    image = figure_to_image_array(fig)
    assert (height, width, 3) == image.shape
    assert abs(width - fig.get_size_inches()[0] * fig.dpi) < 1
    assert sorted(calls) == sorted((a, b) for a in (1, 2, 3, 4) for b in (1, 2, 3, 4) if a != b)

    axes = np.array(fig.axes).reshape(4, 4)
    grey = np.array([0xEC, 0xEC, 0xEC])
    for row in range(4):
        for col in range(4):
            observed = model.pair_ids[row, col] > 0
            face = _cell_face(image, fig, axes[row, col])
            assert np.array_equal(face, grey) != observed, (row, col, face)
    # Observed pairs: later 2 ← earlier 1, 4 ← 2 and 4 ← 1 (cameras 1, 2, 3, 4 → rows 0..3).
    assert {(r, c) for r, c in np.argwhere(model.pair_ids > 0)} == {(1, 0), (3, 1), (3, 0)}

    # The truth overlay of (2, 1) is scaled to the smoothed curve's area over the plotted range.
    smoothed_line, truth_line = axes[1, 0].lines
    assert truth_line.get_linestyle() == "--"
    assert truth_line.get_ydata().sum() == pytest.approx(smoothed_line.get_ydata().sum())
    assert abs(truth_line.get_xdata()[truth_line.get_ydata().argmax()] - 8_000) <= model.bin_width
    assert len(axes[3, 1].lines) == 1  # no truth for (4, 2): the callable said None


def test_transit_grid_max_time_and_bad_suffix(model, tmp_path: Path):
    fig = plot_transit_grid(model, max_time=12_345.0)
    assert fig.axes[4].get_xlim() == (0.0, 12_400.0)
    with pytest.raises(ReIDError, match=r"grid.xyz: cannot save a figure as '.xyz'"):
        plot_transit_grid(model, out=tmp_path / "grid.xyz")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ReIDError, match="max_time"):
        plot_transit_grid(model, max_time=-5.0)


def _solid_images(tmp_path: Path, colours) -> list[Path]:
    paths = []
    for i, colour in enumerate(colours):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (16, 32), colour).save(path)
        paths.append(path)
    return paths


def _is_green(rgb) -> bool:
    return rgb[1] > 140 and rgb[0] < 60 and rgb[2] < 60


def _is_red(rgb) -> bool:
    return rgb[0] > 180 and rgb[1] < 60 and rgb[2] < 60


def test_rank_list_frames_are_green_for_matches_and_red_for_mistakes(tmp_path: Path):
    query, *ranked = _solid_images(
        tmp_path, [(200, 200, 0), (40, 40, 200), (90, 90, 90), (250, 250, 250)]
    )
    is_match = [True, False, True]
    captions = [format_caption(2, 1000.0, 0.9), format_caption(3, 52.4, 0.5), "x"]
    out = tmp_path / "rank.png"
    fig = plot_rank_list(query, ranked, is_match, titles=captions, query_title="q c1", out=out)
    assert len(fig.axes) == 4
    image = figure_to_image_array(fig)
    assert image.dtype == np.uint8 and image.shape[2] == 3
    with Image.open(out) as png:
        assert png.size == (image.shape[1], image.shape[0])
        saved = np.asarray(png.convert("RGB")).astype(int)
    assert np.abs(saved - image.astype(int)).mean() < 1.0

    query_ax, *ranked_axes = fig.axes
    assert query_ax.get_title() == "q c1"
    for ax, match, caption in zip(ranked_axes, is_match, captions, strict=True):
        box = ax.get_window_extent()
        left = _pixel(image, fig, box.x0, box.y0 + box.height / 2)
        top = _pixel(image, fig, box.x0 + box.width / 2, box.y1)
        for rgb in (left, top):
            assert (_is_green if match else _is_red)(rgb), (match, rgb)
        # Inside the frame: the image itself.
        inside = _pixel(image, fig, box.x0 + box.width / 2, box.y0 + box.height / 2)
        assert not _is_green(inside) and not _is_red(inside)
        assert ax.get_xlabel() == caption
    assert captions[:2] == ["c2 t1000 0.900", "c3 t52 0.500"]
    # The query frame is neither colour.
    box = query_ax.get_window_extent()
    edge = _pixel(image, fig, box.x0, box.y0 + box.height / 2)
    assert not _is_green(edge) and not _is_red(edge)


def test_rank_lists_grid_of_rows_with_different_lengths(tmp_path: Path):
    paths = _solid_images(tmp_path, [(0, 0, 0), (255, 255, 255), (128, 0, 128), (0, 128, 128)])
    rows = [
        (paths[0], paths[1:4], [False, False, True], ("visual", ["a", "b", "c"])),
        (paths[0], paths[1:3], [True, False], ["d", "e"]),
    ]
    fig = plot_rank_lists(rows, out=tmp_path / "ranks.png", row_titles=["visual", "visual+st"])
    assert len(fig.axes) == 2 * 4
    image = figure_to_image_array(fig)
    axes = fig.axes
    # Row 2 has one image fewer: its last slot is hidden.
    assert not axes[7].axison
    assert axes[4].get_ylabel() == "visual+st" and axes[0].get_title() == "visual"
    assert [axes[i].get_xlabel() for i in (1, 2, 3, 5, 6)] == ["a", "b", "c", "d", "e"]
    expected = {1: False, 2: False, 3: True, 5: True, 6: False}
    for index, match in expected.items():
        box = axes[index].get_window_extent()
        rgb = _pixel(image, fig, box.x0, box.y0 + box.height / 2)
        assert (_is_green if match else _is_red)(rgb), (index, rgb)
    with Image.open(tmp_path / "ranks.png") as png:
        assert png.size == (image.shape[1], image.shape[0])


def test_rank_list_errors_name_the_problem(tmp_path: Path):
    query, gallery = _solid_images(tmp_path, [(0, 0, 0), (9, 9, 9)])
    with pytest.raises(ReIDError, match=r"missing\.jpg: cannot open image"):
        plot_rank_list(query, [tmp_path / "missing.jpg"], [True])
    with pytest.raises(ReIDError, match="is_match has 2 entries for 1 ranked images"):
        plot_rank_list(query, [gallery], [True, False])
    with pytest.raises(ReIDError, match="3 captions for 1 ranked images"):
        plot_rank_list(query, [gallery], [True], titles=["a", "b", "c"])


def test_st_plot_cli_with_synthetic_ground_truth(tiny_network: Path, tmp_path: Path, capsys):
    from mtmct_reid.data.synth import load_ground_truth

    images = load_ground_truth(tiny_network)["images"]
    train = np.asarray(images["split"]) == "train"
    model = TransitTimeModel.fit(
        np.asarray(images["pid"])[train],
        np.asarray(images["camera"])[train],
        np.asarray(images["time"], dtype=np.float64)[train],
    )
    model_path = tmp_path / "st.npz"
    model.save(model_path)
    out = tmp_path / "st.png"
    rc = main(
        ["st", "plot", str(model_path), "--out", str(out), "--ground-truth", str(tiny_network)]
    )
    assert rc == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > 400 and png.size[1] > 300


def test_st_plot_cli_errors_exit_2_with_one_line(tmp_path: Path, capsys):
    rc = main(["st", "plot", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "absent.npz: transit-time model file not found" in err
    assert "Traceback" not in err
