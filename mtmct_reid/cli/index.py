"""``mtmct-reid index build``: a FAISS index of a features file's gallery, for galleries of millions."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mtmct_reid.validation import arg_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="build a FAISS index of a gallery (exact flat or compressed IVF-PQ)",
        description="Gallery indexes for 'mtmct-reid search --index' (needs the extra 'index').",
    )
    verbs = parser.add_subparsers(dest="index_command", metavar="VERB", required=True)
    build = verbs.add_parser(
        "build",
        help="index the gallery side of a features file",
        description=(
            "Index the gallery features of a features .npz (L2-normalised, inner product = cosine) "
            "and write the index plus a side file OUT.npz with each row's id, camera, time and path."
        ),
    )
    build.add_argument("features", type=Path, help="features file (.npz) with gallery_* arrays")
    build.add_argument("--out", type=Path, required=True, help="index file to write")
    build.add_argument(
        "--force", action="store_true", help="overwrite an existing output file of another kind"
    )
    build.add_argument(
        "--kind",
        default="flat",
        choices=("flat", "ivf-pq"),
        help="flat: exact, 4·D bytes per image; ivf-pq: approximate, --m bytes per image (flat)",
    )
    build.add_argument(
        "--nlist", type=arg_int(minimum=1), default=None, help="IVF cells (default ≈ √N)"
    )
    build.add_argument(
        "--m",
        type=arg_int(minimum=1),
        default=None,
        help="PQ sub-quantisers, a divisor of D; codes are m·nbits/8 bytes per image "
        "(default: D/4 bytes, at most 256)",
    )
    build.add_argument(
        "--nbits",
        type=arg_int(minimum=4, maximum=8),
        choices=(4, 8),
        default=4,
        help="bits per PQ code: 4 = FAISS's fast scan (default), 8 = classic IVF-PQ",
    )
    build.add_argument(
        "--nprobe",
        type=arg_int(minimum=1),
        default=None,
        help="cells a query visits (default nlist/16); search --nprobe overrides it",
    )
    build.add_argument(
        "--keep-vectors",
        action="store_true",
        help="ivf-pq: also write OUT.vectors.npy (float32, memory-mapped when searching) so the "
        "top candidates are re-scored exactly",
    )
    build.add_argument(
        "--threads", type=arg_int(minimum=1), default=None, help="FAISS threads (all cores)"
    )
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    from mtmct_reid._io import check_output
    from mtmct_reid.featureset import FeatureSet
    from mtmct_reid.index import build_index, require_faiss, side_file, vectors_file

    require_faiss()
    out = check_output(args.out, "--out", "faiss", inputs=(args.features,), force=args.force)
    # The side files are written with the index: none of them may replace another kind either.
    check_output(side_file(out), "--out", "index side", inputs=(args.features,), force=args.force)
    if args.keep_vectors:
        check_output(vectors_file(out), "--out", "npy", inputs=(args.features,), force=args.force)
    features = FeatureSet.load(args.features)
    gallery = features.gallery
    start = time.perf_counter()
    index = build_index(
        gallery.features,
        gallery.pids,
        gallery.cams,
        gallery.times,
        gallery.paths,
        kind=args.kind,
        nlist=args.nlist,
        m=args.m,
        nbits=args.nbits,
        nprobe=args.nprobe,
        threads=args.threads,
        keep_vectors=args.keep_vectors,
        metadata={
            "features_file": str(args.features),
            **{f"features_{k}": v for k, v in features.metadata.items()},
        },
    )
    index.save(out)
    elapsed = time.perf_counter() - start
    size = out.stat().st_size
    extra = (
        f", nlist {index.metadata['nlist']}, m {index.metadata['m']} × {args.nbits} bits, "
        f"nprobe {index.nprobe}"
        if args.kind == "ivf-pq"
        else ""
    )
    print(
        f"wrote {out} and {side_file(out)}: {len(index)} × {index.dim}-d, {args.kind}{extra}, "
        f"{size / 2**20:.1f} MiB ({size / max(gallery.features.nbytes, 1):.3f}× the float32 "
        f"features) in {elapsed:.1f}s"
    )
    return 0
