"""Gallery indexes for galleries of millions: FAISS (``faiss-cpu``, the optional extra ``index``).

An index file (``gallery.faiss``) holds the gallery's L2-normalised features for inner-product search
(cosine similarity); a side file beside it (``gallery.faiss.npz``, no pickle) holds each row's person id,
camera, time and path, the kind of index, its dimension and row count, and a fingerprint of the index
file, so a side file that does not belong to its index is refused on load.

Two kinds:

* ``flat``: every vector, exact inner products (``IndexFlatIP``); 4·D bytes per image.
* ``ivf-pq``: an inverted file over ``nlist`` k-means cells, each vector product-quantised to
  ``m`` codes of ``nbits`` bits (4: FAISS's fast scan ``IndexIVFPQFastScan``, the default; 8: the
  classic ``IndexIVFPQ``); a query visits ``nprobe`` cells. Approximate: recall and scores depend on
  ``nprobe`` and ``m``; ``benchmarks/bench_index.py`` measures them.

Searches hand FAISS up to ``QUERY_BATCH`` queries at once, so that a batch takes FAISS's
matrix-product path (one pass over the gallery per batch) instead of one scan per query.

:func:`search_index` takes the top candidates by visual similarity from the index and ranks them with
:func:`mtmct_reid.retrieval.search.search_gallery` (transit-time fusion, the evaluation protocol's filters).
"""

from mtmct_reid.index.faiss_index import (
    ADD_CHUNK,
    FORMAT,
    KINDS,
    RESCORE,
    GalleryIndex,
    build_index,
    fingerprint,
    side_file,
    vectors_file,
)
from mtmct_reid.index.fused_search import (
    JOINT_MARGIN,
    VISUAL_MARGIN,
    IndexedSearchResult,
    search_index,
)
from mtmct_reid.index.settings import (
    DATABASE_BLOCK,
    QUERY_BATCH,
    default_m,
    default_nlist,
    default_nprobe,
    faiss_settings,
    faiss_threads,
    require_faiss,
)

__all__ = [
    "ADD_CHUNK",
    "DATABASE_BLOCK",
    "FORMAT",
    "JOINT_MARGIN",
    "KINDS",
    "QUERY_BATCH",
    "RESCORE",
    "VISUAL_MARGIN",
    "GalleryIndex",
    "IndexedSearchResult",
    "build_index",
    "default_m",
    "default_nlist",
    "default_nprobe",
    "faiss_settings",
    "faiss_threads",
    "fingerprint",
    "require_faiss",
    "search_index",
    "side_file",
    "vectors_file",
]
