"""Figures: the transit-time grid of a camera network and rank lists of retrieved images.

Every function draws on a :class:`matplotlib.figure.Figure` with its own Agg canvas instead of going
through ``pyplot``: no global backend is switched, nothing opens a window, and the figures work the same
in a headless training job, a test and a notebook. matplotlib is imported inside the functions so that
importing this module costs nothing. Figures are returned and, when ``out`` is given, saved atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtmct_reid._io import atomic_path
from mtmct_reid.errors import ReIDError
from mtmct_reid.validation import as_float

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mtmct_reid.retrieval.search import SearchResult
    from mtmct_reid.retrieval.transit import TransitTimeModel

#: Frame colour of a correct match in a rank list.
MATCH_COLOUR = "#00aa00"
#: Frame colour of a wrong match in a rank list.
MISTAKE_COLOUR = "#dc0000"
#: Frame colour of the query image.
QUERY_COLOUR = "#2050c8"
#: Frame colour of a retrieved image whose identity is unknown (``is_match`` entry None).
UNKNOWN_COLOUR = "#909090"

_SMOOTHED_COLOUR = "#1f5fa8"
_RAW_COLOUR = "#9db4d0"
_TRUTH_COLOUR = "#e07b00"
_EMPTY_FACE = "#ececec"
#: The raw histogram is summed over groups of bins so that about this many bars span a cell.
_RAW_BARS_PER_CELL = 60

#: ``ground_truth(later_camera, earlier_camera, time_differences) -> density per time unit or None``.
GroundTruth = Callable[[int, int, np.ndarray], "np.ndarray | None"]


def _new_figure(width: float, height: float, dpi: float = 100) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out: str | os.PathLike) -> Path:
    """Save ``fig`` atomically; the format follows the file's suffix (``.png`` when it has none).

    Args:
        fig: the figure.
        out: destination path (its folder is created).

    Returns:
        the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    supported = canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ReIDError(
            f"{out}: cannot save a figure as '.{fmt}' (expected one of "
            f"{', '.join('.' + k for k in sorted(supported))})"
        )
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=fig.dpi)
    return out


def figure_to_image_array(fig: Figure) -> np.ndarray:
    """Render a figure to an RGB array, e.g. for ``SummaryWriter.add_image(..., dataformats="HWC")``.

    Args:
        fig: the figure (any canvas; an Agg canvas is attached when it has another one).

    Returns:
        uint8 array [H, W, 3] with H, W the figure size in pixels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.array(canvas.buffer_rgba())[..., :3]


# ---------------------------------------------------------------------------------------------
# Transit-time grid


def _format_time(value: float, _position: object = None) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _empty_cell(ax: Axes, text: str) -> None:
    ax.set_facecolor(_EMPTY_FACE)
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=6,
        color="#808080",
    )


def plot_transit_grid(
    model: TransitTimeModel,
    ground_truth: GroundTruth | None = None,
    max_time: float | None = None,
    out: str | os.PathLike | None = None,
) -> Figure:
    """A C×C grid of the transit-time distributions: row = later camera, column = earlier camera.

    Each cell shows the smoothed probability per bin against the time difference (line), the raw
    histogram lightly behind it (counts summed over groups of bins and divided by the group size, so
    both are probability per bin), and optionally the true density scaled to the same area over the
    plotted range (dashed). Same-camera cells and pairs without identities are greyed.

    Args:
        model: a fitted :class:`~mtmct_reid.retrieval.transit.TransitTimeModel`.
        ground_truth: optional ``(later_cam, earlier_cam, dt) -> density per time unit`` (or None
            for a pair without one), e.g. built from a synthetic network's ``ground_truth.json``.
        max_time: right end of the time axis (default: the largest time difference with probability).
        out: optional path to save the figure to (format from the suffix).

    Returns:
        the figure, with exactly C×C axes.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    cameras = model.camera_ids
    c = cameras.size
    bin_width = model.bin_width
    if max_time is None:
        nonzero = np.flatnonzero(model.probabilities.any(axis=(0, 1)))
        last_bin = int(nonzero[-1]) + 1 if nonzero.size else model.num_bins
        max_time = last_bin * bin_width
    else:
        max_time = as_float("max_time (time units)", max_time, 0, low_open=True)
    shown_bins = max(1, min(model.num_bins, int(math.ceil(max_time / bin_width))))
    centres = (np.arange(shown_bins) + 0.5) * bin_width
    group = max(1, int(math.ceil(shown_bins / _RAW_BARS_PER_CELL)))
    groups = int(math.ceil(shown_bins / group))

    cell = 1.9 if c <= 8 else 1.4
    height = 0.78 * cell * c + 1.35
    fig = _new_figure(cell * c + 0.9, height)
    axes = fig.subplots(c, c, sharex=True, squeeze=False)
    fig.subplots_adjust(
        left=0.9 / (cell * c + 0.9),
        right=0.98,
        bottom=0.75 / height,
        top=1 - 0.6 / height,
        wspace=0.08,
        hspace=0.12,
    )
    truth_drawn = False
    for row in range(c):
        for col in range(c):
            ax = axes[row, col]
            later, earlier = int(cameras[row]), int(cameras[col])
            ax.tick_params(labelsize=6, length=2, pad=1)
            ax.tick_params(axis="y", labelleft=False, left=False)
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.xaxis.set_major_formatter(FuncFormatter(_format_time))
            if col == 0:
                ax.set_ylabel(f"later c{later}", fontsize=8)
            if row == 0:
                ax.set_title(f"earlier c{earlier}", fontsize=8)
            if row == col:
                _empty_cell(ax, "same camera")
                continue
            observed = bool(model.pair_ids[row, col] > 0)
            smoothed = model.probabilities[row, col, :shown_bins]
            if observed:
                raw = np.zeros(groups * group)
                raw[:shown_bins] = model.counts[row, col, :shown_bins]
                raw = raw.reshape(groups, group).sum(axis=1)
                raw /= model.counts[row, col].sum() * group
                ax.bar(
                    np.arange(groups) * group * bin_width,
                    raw,
                    width=group * bin_width,
                    align="edge",
                    color=_RAW_COLOUR,
                    alpha=0.6,
                    linewidth=0,
                )
                ax.plot(centres, smoothed, color=_SMOOTHED_COLOUR, linewidth=1.0)
                ax.text(
                    0.97,
                    0.93,
                    f"{int(model.pair_ids[row, col])} ids",
                    transform=ax.transAxes,
                    ha="right",
                    va="top",
                    fontsize=6,
                )
            else:
                _empty_cell(ax, "not observed")
            if ground_truth is not None:
                density = ground_truth(later, earlier, centres)
                if density is not None:
                    per_bin = np.asarray(density, dtype=np.float64).reshape(-1) * bin_width
                    if per_bin.shape != centres.shape:
                        raise ReIDError(
                            f"ground truth for pair ({later}, {earlier}) returned "
                            f"{per_bin.size} values for {centres.size} time differences"
                        )
                    if observed and per_bin.sum() > 0:
                        per_bin *= smoothed.sum() / per_bin.sum()
                    if per_bin.any():
                        ax.plot(
                            centres,
                            per_bin,
                            color=_TRUTH_COLOUR,
                            linewidth=1.0,
                            linestyle="--",
                        )
                        truth_drawn = True
            ax.set_xlim(0, shown_bins * bin_width)
            ax.set_ylim(bottom=0)

    handles = [
        Line2D([], [], color=_SMOOTHED_COLOUR, label="smoothed probability per bin"),
        Patch(color=_RAW_COLOUR, alpha=0.6, label=f"raw histogram ({group} bins a bar)"),
    ]
    if truth_drawn:
        handles.append(Line2D([], [], color=_TRUTH_COLOUR, linestyle="--", label="ground truth"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    unit = model.time_unit or "time units"
    fig.supxlabel(
        f"transit time, leaving the earlier camera to reaching the later one ({unit})",
        y=0.3 / height,
        fontsize=8,
    )
    fig.suptitle(
        f"Transit-time model: row = later camera, column = earlier camera "
        f"(bin {bin_width:g} {unit}, σ {model.sigma_bins:g} bins)",
        fontsize=9,
    )
    if out is not None:
        save_figure(fig, out)
    return fig


# ---------------------------------------------------------------------------------------------
# Rank lists

RankRow = tuple[Any, Sequence[Any], Sequence[bool], Any]


def format_caption(
    camera: int | None = None, time: float | None = None, score: float | None = None
) -> str:
    """A short caption for a retrieved image: camera, time and score (each optional).

    Args:
        camera: camera id, shown as ``c3``.
        time: time in frames, shown rounded (omitted when NaN).
        score: ranking score, shown with three decimals.

    Example:
        >>> format_caption(3, 41250.0, 0.8123)
        'c3 t41250 0.812'
    """
    parts = []
    if camera is not None:
        parts.append(f"c{int(camera)}")
    if time is not None and math.isfinite(time):
        parts.append(f"t{time:.0f}")
    if score is not None:
        parts.append(f"{score:.3f}")
    return " ".join(parts)


def search_result_row(result: SearchResult, query_path: Any) -> RankRow:
    """The rank-list row of one search result, for :func:`plot_rank_lists`.

    Each ranked image is captioned with its camera, time and ranking score; the query is titled with
    its camera (when known) and time. Without the query's identity an entry is neither a match nor a
    mistake (grey frame).

    Args:
        result: a :class:`~mtmct_reid.retrieval.search.SearchResult` whose gallery has image paths.
        query_path: image file of the query.

    Returns:
        ``(query_path, ranked_paths, marks, (query_title, captions))``.

    Raises:
        ReIDError: the result has no gallery paths.
    """
    if result.paths is None:
        raise ReIDError("rank list: the gallery has no image paths, so it cannot be drawn")
    captions = [
        format_caption(int(cam), float(when), float(score))
        for cam, when, score in zip(result.cameras, result.times, result.scores, strict=True)
    ]
    marks = result.matches if result.labelled else [None] * len(result)
    title = format_caption(
        None if result.query_camera < 0 else result.query_camera, result.query_time
    )
    return (query_path, list(result.paths), marks, (f"query {title}".strip(), captions))


def _load_image(path: Any) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise ReIDError(f"{path}: cannot open image ({exc})") from None


def _split_labels(labels: Any) -> tuple[str | None, Sequence[str] | None]:
    """``labels`` is None, ``(query_title, titles)`` or just the ``titles`` of the ranked images."""
    if labels is None:
        return None, None
    if (
        isinstance(labels, tuple)
        and len(labels) == 2
        and (labels[0] is None or isinstance(labels[0], str))
        and (labels[1] is None or not isinstance(labels[1], str))
    ):
        return labels[0], labels[1]
    return None, labels


def _frame(ax: Axes, colour: str, width: float) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(colour)
        spine.set_linewidth(width)


def plot_rank_lists(
    rows: Sequence[RankRow],
    out: str | os.PathLike | None = None,
    *,
    row_titles: Sequence[str] | None = None,
) -> Figure:
    """A grid of rank lists: each row a query at the left and its top-k gallery images to the right,
    framed green (correct match) or red (mistake), with small captions.

    Args:
        rows: ``(query_path, ranked_paths, is_match, labels)`` per row (an ``is_match`` entry of
            None, identity unknown, gets a grey frame); ``labels`` is None, the
            captions of the ranked images, or ``(query_title, captions)``.
        out: optional path to save the figure to (format from the suffix).
        row_titles: optional text at the left of each row (e.g. ``"visual"``, ``"visual+st"``).

    Returns:
        the figure, with ``len(rows) × (1 + k)`` axes (k = longest rank list).
    """
    rows = list(rows)
    if not rows:
        raise ReIDError("rank list: no rows to draw")
    if row_titles is not None and len(row_titles) != len(rows):
        raise ReIDError(f"rank list: {len(row_titles)} row_titles for {len(rows)} rows")
    prepared = []
    for number, row in enumerate(rows):
        if len(row) != 4:
            raise ReIDError(
                f"rank list row {number}: expected (query_path, ranked_paths, is_match, labels), "
                f"got {len(row)} items"
            )
        query_path, ranked_paths, is_match, labels = row
        ranked_paths = list(ranked_paths)
        is_match = [None if m is None else bool(m) for m in is_match]
        if len(is_match) != len(ranked_paths):
            raise ReIDError(
                f"rank list row {number}: is_match has {len(is_match)} entries for "
                f"{len(ranked_paths)} ranked images"
            )
        query_title, titles = _split_labels(labels)
        if titles is not None and len(titles) != len(ranked_paths):
            raise ReIDError(
                f"rank list row {number}: {len(titles)} captions for {len(ranked_paths)} ranked images"
            )
        prepared.append((query_path, ranked_paths, is_match, query_title, titles))

    k = max(len(r[1]) for r in prepared)
    columns = 1 + k
    cell_w, cell_h, gap = 1.05, 2.35, 0.3
    width = cell_w * columns + gap + (0.35 if row_titles else 0.1)
    fig = _new_figure(width, cell_h * len(prepared) + 0.1)
    grid = fig.add_gridspec(
        len(prepared),
        columns + 1,
        width_ratios=[1, gap / cell_w] + [1] * k,
        left=(0.35 if row_titles else 0.05) / width,
        right=1 - 0.05 / width,
        top=1 - 0.3 / (cell_h * len(prepared) + 0.1),
        bottom=0.35 / (cell_h * len(prepared) + 0.1),
        wspace=0.12,
        hspace=0.45,
    )
    for r, (query_path, ranked_paths, is_match, query_title, titles) in enumerate(prepared):
        ax = fig.add_subplot(grid[r, 0])
        ax.imshow(_load_image(query_path))
        _frame(ax, QUERY_COLOUR, 2.0)
        ax.set_title(query_title or "query", fontsize=7)
        if row_titles is not None:
            ax.set_ylabel(row_titles[r], fontsize=8, fontweight="bold")
        for i in range(k):
            ax = fig.add_subplot(grid[r, 2 + i])
            if i >= len(ranked_paths):
                ax.axis("off")
                continue
            ax.imshow(_load_image(ranked_paths[i]))
            match = is_match[i]
            colour = UNKNOWN_COLOUR if match is None else MATCH_COLOUR if match else MISTAKE_COLOUR
            _frame(ax, colour, 4.0)
            ax.set_title(str(i + 1), fontsize=7)
            if titles is not None and titles[i]:
                ax.set_xlabel(str(titles[i]), fontsize=6, labelpad=2)
    # What the frames and captions mean, for a reader who sees the picture alone.
    shown = {match for row in prepared for match in row[2]}
    frames = [
        text
        for value, text in ((True, "green = the query's person"), (False, "red = another person"))
        if value in shown
    ]
    if None in shown:
        frames.append("grey = not known")
    key = "frame: " + ", ".join(frames)
    if any(row[4] is not None for row in prepared):
        key += "; under an image: camera, time (t), score of the row's mode (higher = nearer)"
    fig.text(0.5, 0.04 / (cell_h * len(prepared) + 0.1), key, ha="center", va="bottom", fontsize=6)
    if out is not None:
        save_figure(fig, out)
    return fig


def plot_rank_list(
    query_path: Any,
    ranked_paths: Sequence[Any],
    is_match: Sequence[bool],
    *,
    titles: Sequence[str] | None = None,
    query_title: str | None = None,
    out: str | os.PathLike | None = None,
) -> Figure:
    """One query and its top-k gallery images, framed green (match) or red (mistake).

    Args:
        query_path: image file of the query.
        ranked_paths: image files of the gallery, best first.
        is_match: whether each ranked image is the query's identity.
        titles: optional caption per ranked image (see :func:`format_caption`).
        query_title: optional caption of the query (default ``"query"``).
        out: optional path to save the figure to.

    Returns:
        the figure, with ``1 + len(ranked_paths)`` axes.
    """
    return plot_rank_lists([(query_path, ranked_paths, is_match, (query_title, titles))], out=out)
