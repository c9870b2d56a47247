"""``mtmct-reid search``: find one person across the cameras of a gallery."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

from mtmct_reid.cli import add_layout_arguments
from mtmct_reid.retrieval.transit import TRANSIT_FILE
from mtmct_reid.validation import arg_float, arg_int, arg_nonnegative_int, arg_positive_int

log = logging.getLogger(__name__)

#: File looked for beside a checkpoint (and one folder up) when no --st-model is given.


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="rank a gallery for query images: where else was this person seen?",
        description=(
            "Rank the gallery for each query by appearance and, with a transit-time model, by the "
            "st-ReID joint score of appearance and camera-to-camera timing. Queries are image files "
            "(with the camera and time they were taken at) or rows of a features file. Gallery "
            "features extracted from a folder are cached, so the next search starts at once."
        ),
        epilog=(
            "examples:\n"
            "  mtmct-reid search --checkpoint last.ckpt --gallery Market-1501 "
            "--query q.jpg --camera 1 --time 41250 --st-model st.npz --out ranks.png\n"
            "  mtmct-reid search --features features.npz --query-index 0 5 --st-model st.npz"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint of 'mtmct-reid train' (not needed when query and gallery come from "
        "features files)",
    )
    parser.add_argument(
        "--gallery",
        type=Path,
        default=None,
        metavar="DIR|FEATURES.npz",
        help="dataset root or CSV manifest (its gallery split), a folder of images, or a features "
        "file (default with --features: that file's gallery)",
    )
    queries = parser.add_mutually_exclusive_group(required=True)
    queries.add_argument(
        "--query", type=Path, nargs="+", metavar="IMG", help="query image file(s), one search each"
    )
    queries.add_argument(
        "--features",
        type=Path,
        default=None,
        metavar="F.npz",
        help="features file whose query rows are searched (with --query-index)",
    )
    parser.add_argument(
        "--query-index",
        type=arg_nonnegative_int,
        nargs="+",
        default=None,
        metavar="I",
        help="rows of the features file's queries to search",
    )
    parser.add_argument(
        "--camera",
        type=arg_int(),
        nargs="+",
        default=None,
        metavar="C",
        help="camera id of the query image(s): one for all or one per image (needed for ST; "
        "read from Market/Duke-style names when omitted)",
    )
    parser.add_argument(
        "--time",
        type=arg_float(),
        nargs="+",
        default=None,
        metavar="T",
        help="time (frames) of the query image(s): one for all or one per image (needed for ST; "
        "read from Market/Duke-style names when omitted)",
    )
    st = parser.add_mutually_exclusive_group()
    st.add_argument(
        "--st-model",
        type=Path,
        default=None,
        metavar="ST.npz",
        help=f"transit-time model (default: {TRANSIT_FILE} beside the checkpoint, if any)",
    )
    st.add_argument("--no-st", action="store_true", help="rank by appearance only")
    parser.add_argument(
        "--top-k", type=arg_positive_int, default=10, help="gallery images listed per query (10)"
    )
    parser.add_argument(
        "--cross-camera",
        action="store_true",
        help="leave out gallery images from the query's own camera",
    )
    parser.add_argument(
        "--out", type=Path, default=None, metavar="PNG", help="write a rank-list image here"
    )
    parser.add_argument(
        "--force",
        "--overwrite",
        dest="force",
        action="store_true",
        help="replace an existing --out image, or a --cache file that is not a features cache",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="PATH",
        help="gallery features cache file (default: ~/.cache/mtmct-reid/gallery-<key>.npz)",
    )
    large = parser.add_argument_group("a large gallery: a FAISS index ('mtmct-reid index build')")
    large.add_argument(
        "--index",
        type=Path,
        default=None,
        metavar="G.faiss",
        help="search this gallery index instead of --gallery",
    )
    large.add_argument(
        "--candidates",
        type=arg_positive_int,
        default=1000,
        help="rows taken from the index by appearance before transit-time fusion (1000)",
    )
    large.add_argument(
        "--nprobe", type=arg_positive_int, default=None, help="IVF cells a query visits"
    )
    large.add_argument(
        "--threads",
        type=arg_positive_int,
        default=None,
        help="FAISS threads (default: every usable core)",
    )
    add_layout_arguments(parser)
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N"
    )
    parser.add_argument(
        "--batch-size", type=arg_positive_int, default=64, help="images per batch (64)"
    )
    parser.set_defaults(func=run_search)


def _per_query(values: list | None, count: int, option: str, default: float) -> list:
    from mtmct_reid.errors import ReIDError

    if values is None:
        return [default] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ReIDError(
            f"{option}: {len(values)} values for {count} query images (give one, or one per image)"
        )
    return list(values)


def _check_query_images(paths: list[Path]) -> None:
    from PIL import Image, UnidentifiedImageError

    from mtmct_reid._io import require_file
    from mtmct_reid.errors import ReIDError

    for path in paths:
        require_file(path, "--query", "image")
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            raise ReIDError(f"--query {path}: not a readable image ({exc})") from None


def _find_st_model(args: argparse.Namespace) -> Path | None:
    if args.no_st:
        return None
    if args.st_model is not None:
        return args.st_model
    if args.checkpoint is not None:
        for folder in (args.checkpoint.parent, args.checkpoint.parent.parent):
            candidate = folder / TRANSIT_FILE
            if candidate.is_file():
                log.info("using the transit-time model %s found beside the checkpoint", candidate)
                return candidate
    return None


def _format_table(result: Any, query_name: str) -> str:
    from mtmct_reid.retrieval.search import RANKED_JOINT

    when = "" if math.isnan(result.query_time) else f", time {result.query_time:.0f}"
    camera = "unknown camera" if result.query_camera < 0 else f"camera {result.query_camera}"
    lines = [f"query {query_name} ({camera}{when}): ranked by {result.ranked_by}"]
    header = f"{'rank':>4}  {'camera':>6}  {'time':>9}  {'visual':>7}  {'ST prob':>8}  {'joint':>7}"
    if result.labelled:
        header += f"  {'match':>5}"
    lines.append(header + "  path")
    for rank in range(len(result)):
        time_text = "-" if math.isnan(result.times[rank]) else f"{result.times[rank]:.0f}"
        st_text = (
            "-" if result.ranked_by != RANKED_JOINT else f"{result.st_probabilities[rank]:.5f}"
        )
        joint_text = "-" if result.ranked_by != RANKED_JOINT else f"{result.joint_scores[rank]:.4f}"
        line = (
            f"{rank + 1:>4}  {result.cameras[rank]:>6}  {time_text:>9}  "
            f"{result.visual_scores[rank]:>7.4f}  {st_text:>8}  {joint_text:>7}"
        )
        if result.labelled:
            line += f"  {'yes' if result.matches[rank] else 'no':>5}"
        path = "-" if result.paths is None else str(result.paths[rank])
        lines.append(f"{line}  {path}")
    return "\n".join(lines)


def run_search(args: argparse.Namespace) -> int:
    import numpy as np

    from mtmct_reid._io import check_output, require_file
    from mtmct_reid.data.readers import parse_image_names
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.featureset import FeatureSet
    from mtmct_reid.gallery import gallery_featureset_cached, load_gallery_features
    from mtmct_reid.retrieval.search import search_gallery

    inputs = (
        args.features,
        args.gallery,
        args.checkpoint,
        args.st_model,
        args.index,
        *(args.query or ()),
    )
    if args.out is not None:
        check_output(args.out, "--out", "image", inputs=inputs, force=args.force)
        if args.out.is_file() and not args.force:
            raise ReIDError(f"--out {args.out}: already exists (pass --force to replace it)")
    if args.cache is not None:
        check_output(args.cache, "--cache", "gallery cache", inputs=inputs, force=args.force)
    if args.features is not None:
        if args.query_index is None:
            raise ReIDError("--features needs --query-index I [I ...] (the query rows to search)")
        if args.camera is not None or args.time is not None:
            raise ReIDError("--camera/--time go with --query images; --features has its own")
    elif args.query_index is not None:
        raise ReIDError("--query-index needs --features F.npz")
    if args.index is not None and args.gallery is not None:
        raise ReIDError("--index is the gallery; give --index or --gallery, not both")
    for flag, value in (("--nprobe", args.nprobe), ("--threads", args.threads)):
        if value is not None and args.index is None:
            raise ReIDError(f"{flag} goes with --index (a FAISS gallery index)")
    if args.query is not None:
        if args.gallery is None and args.index is None:
            raise ReIDError(
                "--query images need --gallery DIR|FEATURES.npz or --index to search in"
            )
        if args.checkpoint is None:
            raise ReIDError("--query images need --checkpoint to compute their features")
        # Every per-image option is checked before any image is read or any gallery extracted.
        count = len(args.query)
        query_cams = np.asarray(_per_query(args.camera, count, "--camera", -1), dtype=np.int64)
        query_times = np.asarray(_per_query(args.time, count, "--time", math.nan), dtype=np.float64)
        query_pids = None
        try:
            parsed = parse_image_names([p.name for p in args.query])
        except ReIDError as exc:
            raise ReIDError(f"--query: {exc}") from None
        if parsed is not None:
            # Dataset-named queries carry their id, camera and time; --camera/--time still win.
            query_pids = parsed[0]
            if args.camera is None:
                query_cams = parsed[1]
            if args.time is None:
                query_times = parsed[2]
        _check_query_images(args.query)
    # A file is a features file, unless it is a dataset's CSV manifest.
    gallery_is_file = (
        args.gallery is not None
        and args.gallery.is_file()
        and args.gallery.suffix.lower() != ".csv"
        and args.layout != "manifest"
    )
    if args.gallery is not None and not args.gallery.exists():
        raise ReIDError(f"--gallery {args.gallery}: no such folder, manifest or features file")
    needs_model = args.query is not None or (args.gallery is not None and not gallery_is_file)
    if needs_model and args.checkpoint is None:
        raise ReIDError(f"--gallery {args.gallery}: extracting a folder needs --checkpoint")
    if args.checkpoint is not None:
        require_file(args.checkpoint, "--checkpoint", "checkpoint")

    # The model is built only for query images; a folder gallery builds it on a cache miss.
    model = hparams = None
    if args.query is not None:
        from mtmct_reid.models.checkpoint import load_model_from_checkpoint

        model, hparams = load_model_from_checkpoint(args.checkpoint)
        if "image_size" not in hparams:
            raise ReIDError(f"{args.checkpoint}: checkpoint does not record its image size")
    features = FeatureSet.load(args.features) if args.features is not None else None
    if features is not None:
        rows = np.asarray(args.query_index, dtype=np.int64)
        bad = rows[(rows < 0) | (rows >= len(features.query))]
        if bad.size:
            raise ReIDError(
                f"--query-index {int(bad[0])}: {args.features} has {len(features.query)} queries "
                f"(0..{len(features.query) - 1})"
            )

    # Gallery.
    source = index = None
    if args.index is not None:
        from mtmct_reid.index import GalleryIndex, faiss_threads

        index = GalleryIndex.load(args.index, nprobe=args.nprobe)
        index.threads = faiss_threads(args.threads)
        gallery, source = None, f"{args.index} ({index.kind} index)"
    elif args.gallery is None:
        gallery, source = features.gallery, f"{args.features} (gallery)"
    elif gallery_is_file:
        gallery, _ = load_gallery_features(args.gallery)
        source = str(args.gallery)
    else:
        cached = gallery_featureset_cached(
            args.checkpoint,
            args.gallery,
            args.cache,
            layout=args.layout,
            pattern=args.pattern,
            image_size=None if hparams is None else hparams["image_size"],
            batch_size=args.batch_size,
            device=args.device,
            model=model,
        )
        gallery = cached.side
        source = f"{args.gallery} ({'cached' if cached.from_cache else 'extracted'}: {cached.cache_path})"

    # Queries.
    if features is not None:
        query = features.query
        query_features = query.features[rows]
        query_cams, query_times, query_pids = query.cams[rows], query.times[rows], query.pids[rows]
        query_paths = None if query.paths is None else [str(p) for p in query.paths[rows]]
        query_names = [
            f"#{int(r)}" + ("" if query.paths is None else f" {query.paths[r]}") for r in rows
        ]
    else:
        from mtmct_reid.features import FeatureExtractor

        extractor = FeatureExtractor(
            model, hparams["image_size"], batch_size=args.batch_size, device=args.device
        )
        query_features = extractor([str(p) for p in args.query])
        query_paths = [str(p) for p in args.query]
        query_names = query_paths
    gallery_dim = index.dim if index is not None else gallery.features.shape[1]
    if query_features.shape[1] != gallery_dim:
        what = f"{args.checkpoint}" if args.query is not None else f"{args.features}"
        raise ReIDError(
            f"{what} gives {query_features.shape[1]}-d features but the gallery {source} has "
            f"{gallery_dim}-d ones; they must come from the same model"
        )

    st_model = None
    st_path = _find_st_model(args)
    if st_path is not None:
        from mtmct_reid.retrieval.transit import TransitTimeModel

        st_model = TransitTimeModel.load(st_path)
    options = {"st_model": st_model, "top_k": args.top_k, "query_pids": query_pids}
    options["cross_camera"] = args.cross_camera
    if index is not None:
        from mtmct_reid.index import search_index

        results = search_index(
            index, query_features, query_cams, query_times, candidates=args.candidates, **options
        )
    else:
        results = search_gallery(query_features, query_cams, query_times, gallery, **options)
    print(f"gallery: {len(index if index is not None else gallery)} images from {source}")
    if st_model is None:
        print("no transit-time model: ranked by visual similarity only")
    else:
        print(f"transit-time model: {st_path}")
    for result, name in zip(results, query_names, strict=True):
        print()
        print(_format_table(result, name))
        if index is not None:
            # Whether this list is provably the whole gallery's (see README, "what is exact").
            print(result.exactness)
    if args.out is not None:
        _write_rank_lists(args.out, results, query_paths, args.features or args.checkpoint)
        print(f"\nwrote {args.out}")
    return 0


def _write_rank_lists(
    out: Path, results: list, query_paths: list[str] | None, source: Path
) -> None:
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.report.plots import plot_rank_lists, search_result_row

    if query_paths is None:
        raise ReIDError(f"--out: {source} has no query_paths, so the query images cannot be drawn")
    if any(result.paths is None for result in results):
        raise ReIDError("--out: the gallery has no image paths, so it cannot be drawn")
    rows = [
        search_result_row(result, query_path)
        for result, query_path in zip(results, query_paths, strict=True)
    ]
    plot_rank_lists(rows, out=out, row_titles=[r.ranked_by for r in results])
