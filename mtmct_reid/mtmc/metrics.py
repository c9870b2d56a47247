"""Multi-camera tracking metrics: per camera and for the whole network.

Identity (IDF1, IDP, IDR), CLEAR (MOTA) and HOTA come from Roboflow's ``trackers.eval``, a port of
TrackEval's matching and formulas; this module only turns :class:`~mtmct_reid.mtmc.root.Boxes` into
the per-frame id lists and IoU matrices those functions take.

* **Per camera**: each camera's boxes are one sequence; ids are compared as they are (global ids in
  the ground truth, whatever ids the prediction carries).
* **Network** (the AI City scorer's multi-camera IDF1): the cameras are laid end to end as one long
  sequence, camera ``k``'s frames shifted past the last frame of cameras ``1..k-1``, so an identity
  is counted right only where one predicted id follows it through every camera.
* **MCTA** (multi-camera tracking accuracy, Chen et al. 2014):
  ``F1 · (1 − M_w / T_w) · (1 − M_h / T_h)``. ``F1`` is the detection F1 of the per-camera CLEAR
  matches; walking each ground-truth identity's matched boxes in common-clock order, a box in the
  same camera as the identity's previous matched box is a within-camera step and one in another
  camera a handover (``T_h``); ``M_w`` and ``M_h`` count the steps whose predicted id differs from the
  previous one's; ``T_w = TP − T_h``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.root import Boxes

_TRACKERS_EXTRA = (
    "the tracking metrics need Roboflow's trackers package: pip install 'mtmct-reid[video]'"
)

#: Scores printed per camera and for the network, in table order.
CAMERA_COLUMNS = ("IDF1", "IDP", "IDR", "MOTA", "HOTA")
NETWORK_COLUMNS = ("IDF1", "IDP", "IDR", "MOTA", "HOTA", "MCTA")


def _trackers_eval():
    try:
        from trackers import eval as trackers_eval
    except ImportError:
        raise ReIDError(_TRACKERS_EXTRA) from None
    return trackers_eval


@dataclass(frozen=True)
class Sequence:
    """One sequence in the form the ``trackers.eval`` functions take (ids 0-based per sequence).

    Args:
        gt_ids: per frame, the ground-truth id index of each box.
        pred_ids: per frame, the predicted id index of each box.
        similarity: per frame, the IoU matrix [gt boxes, predicted boxes].
        gt_rows: per frame, the rows of the ground-truth :class:`Boxes` (to map matches back).
        pred_rows: per frame, the rows of the predicted :class:`Boxes`.
        gt_labels: the ground-truth id of each index.
        pred_labels: the predicted id of each index.
    """

    gt_ids: list[np.ndarray]
    pred_ids: list[np.ndarray]
    similarity: list[np.ndarray]
    gt_rows: list[np.ndarray]
    pred_rows: list[np.ndarray]
    gt_labels: np.ndarray
    pred_labels: np.ndarray


def build_sequence(pred: Boxes, gt: Boxes, frames: np.ndarray | None = None) -> Sequence:
    """Per-frame ids and IoU of two box sets that share one frame axis.

    Args:
        pred: predicted boxes.
        gt: ground-truth boxes.
        frames: the frame of each box, as (pred frames, gt frames) concatenated; default the
            boxes' own ``frames``. Used to lay several cameras on one axis.
    """
    box_iou = _trackers_eval().box_iou
    pf = pred.frames if frames is None else frames[: len(pred)]
    gf = gt.frames if frames is None else frames[len(pred) :]
    gt_labels, gt_index = np.unique(gt.ids, return_inverse=True)
    pred_labels, pred_index = np.unique(pred.ids, return_inverse=True)
    last = int(max(pf.max(initial=0), gf.max(initial=0)))
    g_order = np.argsort(gf, kind="stable")
    p_order = np.argsort(pf, kind="stable")
    g_bounds = np.searchsorted(gf[g_order], np.arange(1, last + 2))
    p_bounds = np.searchsorted(pf[p_order], np.arange(1, last + 2))
    g_xywh, p_xywh = gt.xywh, pred.xywh
    seq = Sequence([], [], [], [], [], gt_labels, pred_labels)
    for t in range(last):
        g = g_order[g_bounds[t] : g_bounds[t + 1]]
        p = p_order[p_bounds[t] : p_bounds[t + 1]]
        seq.gt_ids.append(gt_index[g].astype(np.intp))
        seq.pred_ids.append(pred_index[p].astype(np.intp))
        seq.similarity.append(
            box_iou(g_xywh[g], p_xywh[p], box_format="xywh")
            if len(g) and len(p)
            else np.zeros((len(g), len(p)))
        )
        seq.gt_rows.append(g)
        seq.pred_rows.append(p)
    return seq


def clear_matches(seq: Sequence, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The CLEAR MOT matches of a sequence: (gt rows, pred rows) of every matched pair.

    The same per-frame assignment as ``trackers.eval.compute_clear_metrics`` (and TrackEval): the
    Hungarian algorithm over IoU ≥ ``threshold``, with a large bonus for keeping the previous
    frame's match; that function returns counts only, MCTA needs the pairs.
    """
    from scipy.optimize import linear_sum_assignment

    eps = np.finfo(float).eps
    prev = np.full(len(seq.gt_labels), np.nan)
    gt_rows, pred_rows = [], []
    for g_ids, p_ids, sim, g_rows, p_rows in zip(
        seq.gt_ids, seq.pred_ids, seq.similarity, seq.gt_rows, seq.pred_rows, strict=True
    ):
        if len(g_ids) == 0 or len(p_ids) == 0:
            continue
        score = 1000.0 * (p_ids[None, :] == prev[g_ids][:, None]) + sim
        score[sim < threshold - eps] = 0
        rows, cols = linear_sum_assignment(-score)
        keep = score[rows, cols] > eps
        rows, cols = rows[keep], cols[keep]
        prev[:] = np.nan
        prev[g_ids[rows]] = p_ids[cols]
        gt_rows.append(g_rows[rows])
        pred_rows.append(p_rows[cols])
    if not gt_rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(gt_rows).astype(np.int64), np.concatenate(pred_rows).astype(np.int64)


@dataclass(frozen=True)
class SequenceScores:
    """Scores of one sequence (a camera, or the network laid end to end); fractions in [0, 1].

    Args:
        IDF1, IDP, IDR: identity F1, precision, recall.
        MOTA: CLEAR multi-object tracking accuracy (may be negative).
        HOTA, DetA, AssA: higher-order tracking accuracy and its detection / association parts.
        counts: IDTP, IDFP, IDFN, TP, FP, FN, IDSW, gt and predicted boxes and ids.
    """

    IDF1: float
    IDP: float
    IDR: float
    MOTA: float
    HOTA: float
    DetA: float
    AssA: float
    counts: Mapping[str, int] = field(default_factory=dict)


def score_sequence(seq: Sequence, threshold: float = 0.5) -> SequenceScores:
    """Identity, CLEAR and HOTA scores of a sequence (``trackers.eval``)."""
    te = _trackers_eval()
    ident = te.compute_identity_metrics(seq.gt_ids, seq.pred_ids, seq.similarity, threshold)
    clear = te.compute_clear_metrics(seq.gt_ids, seq.pred_ids, seq.similarity, threshold)
    hota = te.compute_hota_metrics(seq.gt_ids, seq.pred_ids, seq.similarity)
    counts = {
        "IDTP": int(ident["IDTP"]),
        "IDFP": int(ident["IDFP"]),
        "IDFN": int(ident["IDFN"]),
        "TP": int(clear["CLR_TP"]),
        "FP": int(clear["CLR_FP"]),
        "FN": int(clear["CLR_FN"]),
        "IDSW": int(clear["IDSW"]),
        "gt_boxes": int(sum(len(a) for a in seq.gt_ids)),
        "pred_boxes": int(sum(len(a) for a in seq.pred_ids)),
        "gt_ids": len(seq.gt_labels),
        "pred_ids": len(seq.pred_labels),
    }
    return SequenceScores(
        IDF1=float(ident["IDF1"]),
        IDP=float(ident["IDP"]),
        IDR=float(ident["IDR"]),
        MOTA=float(clear["MOTA"]),
        HOTA=float(hota["HOTA"]),
        DetA=float(hota["DetA"]),
        AssA=float(hota["AssA"]),
        counts=counts,
    )


@dataclass(frozen=True)
class TrackScores:
    """Per-camera and network scores of a multi-camera tracking result.

    Args:
        cameras: camera id → its scores.
        network: the cameras laid end to end (multi-camera IDF1/IDP/IDR, MOTA, HOTA).
        mcta: multi-camera tracking accuracy.
        mcta_parts: its terms: ``F1``, ``within_mismatches``, ``within_steps``,
            ``handover_mismatches``, ``handovers``.
    """

    cameras: Mapping[int, SequenceScores]
    network: SequenceScores
    mcta: float
    mcta_parts: Mapping[str, float]

    def to_json(self) -> dict:
        """Fractions and counts as plain JSON types."""
        network = asdict(self.network)
        network["MCTA"] = self.mcta
        network["MCTA_parts"] = dict(self.mcta_parts)
        return {
            "cameras": {str(cam): asdict(s) for cam, s in self.cameras.items()},
            "network": network,
        }

    def format_table(self) -> str:
        """One table: a row per camera, then the network row, figures in percent."""
        header = ["camera", *NETWORK_COLUMNS, "gt ids", "pred ids", "IDSW"]
        rows = []
        for cam, s in self.cameras.items():
            rows.append(
                [str(cam)]
                + [f"{100 * getattr(s, c):.1f}" for c in CAMERA_COLUMNS]
                + ["", str(s.counts["gt_ids"]), str(s.counts["pred_ids"]), str(s.counts["IDSW"])]
            )
        n = self.network
        rows.append(
            ["network"]
            + [f"{100 * getattr(n, c):.1f}" for c in CAMERA_COLUMNS]
            + [f"{100 * self.mcta:.1f}", str(n.counts["gt_ids"]), str(n.counts["pred_ids"]), ""]
        )
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(lines)


def mcta(
    pred: Boxes, gt: Boxes, gt_rows: np.ndarray, pred_rows: np.ndarray, times: np.ndarray | None
) -> tuple[float, dict[str, float]]:
    """MCTA from per-camera CLEAR matches (see the module documentation).

    Args:
        pred, gt: the boxes.
        gt_rows, pred_rows: matched pairs (rows of ``gt`` and ``pred``), from every camera.
        times: common-clock time of each ``gt`` row (default: frame numbers, one clock).
    """
    tp = len(gt_rows)
    fp = len(pred) - tp
    fn = len(gt) - tp
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    t = (gt.frames if times is None else times)[gt_rows].astype(np.float64)
    ids = gt.ids[gt_rows]
    order = np.lexsort((gt.cams[gt_rows], t, ids))
    ids, cams, assigned = ids[order], gt.cams[gt_rows][order], pred.ids[pred_rows][order]
    step = ids[1:] == ids[:-1]  # consecutive matched boxes of one identity
    handover = step & (cams[1:] != cams[:-1])
    within = step & ~handover
    changed = assigned[1:] != assigned[:-1]
    handovers = int(handover.sum())
    within_steps = tp - handovers
    m_w = int((within & changed).sum())
    m_h = int((handover & changed).sum())
    value = (
        f1
        * (1 - m_w / within_steps if within_steps else 1.0)
        * (1 - m_h / handovers if handovers else 1.0)
    )
    parts = {
        "F1": f1,
        "within_mismatches": m_w,
        "within_steps": within_steps,
        "handover_mismatches": m_h,
        "handovers": handovers,
    }
    return float(value), parts


def evaluate_tracks(
    pred: Boxes,
    gt: Boxes,
    gt_times: np.ndarray | None = None,
    threshold: float = 0.5,
) -> TrackScores:
    """Score predicted multi-camera tracks against ground truth.

    Args:
        pred: predicted boxes of any cameras (ids: the prediction's identities).
        gt: ground-truth boxes (ids global across cameras).
        gt_times: common-clock time of each ``gt`` row (``MTMCRoot.times``), which orders an
            identity's boxes across cameras for MCTA; default the frame numbers (right only when
            every camera starts at the same time with the same frame rate).
        threshold: IoU for a match (CLEAR, Identity); HOTA averages over thresholds itself.

    Example:
        >>> gt = Boxes.from_columns(cams=[1, 1, 2], frames=[1, 2, 1], ids=[5, 5, 5],
        ...                         x=[0, 0, 0], y=[0, 0, 0], w=[10, 10, 10], h=[10, 10, 10])
        >>> scores = evaluate_tracks(gt, gt)
        >>> scores.network.IDF1, scores.mcta
        (1.0, 1.0)
    """
    cams = np.union1d(np.unique(pred.cams), np.unique(gt.cams)).tolist()
    per_camera = {}
    match_g, match_p = [], []
    # Frames of camera k start after the last frame of cameras before it (the AI City scorer).
    shift = 0
    pred_frames = np.zeros(len(pred), dtype=np.int64)
    gt_frames = np.zeros(len(gt), dtype=np.int64)
    for cam in cams:
        p_sel = np.flatnonzero(pred.cams == cam)
        g_sel = np.flatnonzero(gt.cams == cam)
        p, g = pred.select(p_sel), gt.select(g_sel)
        seq = build_sequence(p, g)
        per_camera[int(cam)] = score_sequence(seq, threshold)
        gr, pr = clear_matches(seq, threshold)
        match_g.append(g_sel[gr])
        match_p.append(p_sel[pr])
        pred_frames[p_sel] = p.frames + shift
        gt_frames[g_sel] = g.frames + shift
        shift += int(max(p.frames.max(initial=0), g.frames.max(initial=0)))
    network_seq = build_sequence(pred, gt, frames=np.concatenate([pred_frames, gt_frames]))
    network = score_sequence(network_seq, threshold)
    value, parts = mcta(
        pred,
        gt,
        np.concatenate(match_g) if match_g else np.zeros(0, dtype=np.int64),
        np.concatenate(match_p) if match_p else np.zeros(0, dtype=np.int64),
        gt_times,
    )
    return TrackScores(cameras=per_camera, network=network, mcta=value, mcta_parts=parts)
