"""FAISS gallery indexes: exact flat top-k, search with fusion, side-file checks, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mtmct_reid import cli
from mtmct_reid._io import describe_file
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSet, FeatureSide
from mtmct_reid.retrieval.search import search_gallery
from mtmct_reid.retrieval.transit import TransitTimeModel

faiss = pytest.importorskip("faiss")

from mtmct_reid.index import (  # noqa: E402
    GalleryIndex,
    build_index,
    search_index,
    side_file,
    vectors_file,
)


def _brute_force_top_k(gallery: np.ndarray, queries: np.ndarray, k: int):
    """From the definition: cosine similarity to every gallery row, sorted, first k."""
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    rows, scores = [], []
    for query in q:
        sims = [float(np.dot(query.astype(np.float64), row)) for row in g]
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        rows.append(order)
        scores.append([sims[i] for i in order])
    return np.array(rows), np.array(scores)


def _clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return (centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, dim))).astype(
        np.float32
    )


def _features_file(path, n_query=6, n_gallery=300, dim=16, seed=0):
    """A features file of people walking between 3 cameras (times in frames)."""
    rng = np.random.default_rng(seed)
    people = n_gallery // 3
    looks = rng.normal(size=(people, dim))

    def side(n, offset):
        pids = rng.integers(1, people + 1, n)
        cams = rng.integers(1, 4, n)
        times = pids * 1000.0 + cams * 300.0 + rng.normal(0, 50, n) + offset
        feats = looks[pids - 1] + 0.8 * rng.normal(size=(n, dim))
        paths = np.array([f"img_{offset}_{i:04d}.jpg" for i in range(n)])
        return FeatureSide(feats.astype(np.float32), pids, cams, times, paths)

    fs = FeatureSet(query=side(n_query, 0), gallery=side(n_gallery, 7), metadata={"model": "x"})
    fs.save(path)
    return fs


def test_flat_index_returns_the_brute_force_top_k(tmp_path, capsys):
    fs = _features_file(tmp_path / "f.npz")
    out = tmp_path / "idx" / "gallery.faiss"
    assert cli.main(["index", "build", str(tmp_path / "f.npz"), "--out", str(out)]) == 0
    assert "300 × 16-d, flat" in capsys.readouterr().out
    index = GalleryIndex.load(out)
    assert index.kind == "flat" and len(index) == 300
    assert np.array_equal(index.paths, fs.gallery.paths) and np.array_equal(
        index.pids, fs.gallery.pids
    )
    scores, rows = index.search(fs.query.features, k=10)
    want_rows, want_scores = _brute_force_top_k(fs.gallery.features, fs.query.features, 10)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    # Stored vectors come back as they went in (unit rows): ranking them is exact too.
    np.testing.assert_allclose(
        index.side(rows[0]).features,
        fs.gallery.features[rows[0]]
        / np.linalg.norm(fs.gallery.features[rows[0]], axis=1)[:, None],
        atol=1e-6,
    )


def test_batched_flat_search_is_exact_and_leaves_faiss_settings_as_they_were(monkeypatch):
    from mtmct_reid.index import faiss_index as index_module

    def settings():
        return (
            faiss.omp_get_max_threads(),
            faiss.cvar.distance_compute_blas_threshold,
            faiss.cvar.distance_compute_blas_query_bs,
            faiss.cvar.distance_compute_blas_database_bs,
        )

    before = settings()
    x = _clustered(2000, 32, 40, seed=3)
    queries = _clustered(120, 32, 40, seed=4)
    index = build_index(x, np.arange(2000), np.zeros(2000), threads=1)
    assert settings() == before
    # Batches of 50: two on FAISS's matrix-product path, and a last one of 20.
    monkeypatch.setattr(index_module, "QUERY_BATCH", 50)
    scores, rows = index.search(queries, 10)
    assert settings() == before
    want_rows, want_scores = _brute_force_top_k(x, queries, 10)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    index.threads = 1
    for q in (0, 77, 119):  # one query at a time: FAISS's scan path, one thread
        one_scores, one_rows = index.search(queries[q : q + 1], 10)
        np.testing.assert_array_equal(one_rows[0], want_rows[q])
        np.testing.assert_allclose(one_scores[0], want_scores[q], atol=1e-5)
    index.threads = 10**6
    with pytest.raises(ReIDError, match="--threads 1000000: this process may use"):
        index.search(queries, 10)


def test_search_with_an_index_and_fusion_equals_search_without_it(tmp_path):
    fs = _features_file(tmp_path / "f.npz")
    st = TransitTimeModel.fit(fs.gallery.pids, fs.gallery.cams, fs.gallery.times, bin_width=50)
    index = build_index(fs.gallery.features, fs.gallery.pids, fs.gallery.cams, fs.gallery.times)
    q = fs.query
    for kwargs in ({"st_model": st}, {"st_model": st, "query_pids": q.pids}, {}):
        plain = search_gallery(q.features, q.cams, q.times, fs.gallery, top_k=15, **kwargs)
        indexed = search_index(
            index, q.features, q.cams, q.times, top_k=15, candidates=300, **kwargs
        )
        for a, b in zip(plain, indexed, strict=True):
            assert a.ranked_by == b.ranked_by and a.query_index == b.query_index
            np.testing.assert_array_equal(a.gallery_indices, b.gallery_indices)
            np.testing.assert_allclose(a.visual_scores, b.visual_scores, atol=1e-5)
            np.testing.assert_allclose(a.joint_scores, b.joint_scores, atol=1e-5)
            np.testing.assert_array_equal(a.times, b.times)
    assert plain[0].ranked_by == "visual" and indexed[0].st_probabilities.size == 15


def test_each_result_says_whether_it_is_provably_the_whole_gallerys(tmp_path):
    fs = _features_file(tmp_path / "f.npz", n_query=30, n_gallery=300)
    g, q = fs.gallery, fs.query
    st = TransitTimeModel.fit(g.pids, g.cams, g.times, bin_width=50)
    index = build_index(g.features, g.pids, g.cams, g.times, threads=1)
    seen = {"exact": 0, "unproven": 0, "unproven and wrong": 0}
    for kwargs in ({"st_model": st}, {"st_model": st, "query_pids": q.pids}, {}):
        # Brute force with fusion over the whole gallery: what an exact result must equal.
        truth = search_gallery(q.features, q.cams, q.times, g, top_k=5, **kwargs)
        for candidates in (5, 10, 30, 100, 300):
            found = search_index(
                index, q.features, q.cams, q.times, top_k=5, candidates=candidates, **kwargs
            )
            for want, got in zip(truth, found, strict=True):
                same = np.array_equal(want.gallery_indices, got.gallery_indices)
                assert got.candidates == candidates
                if got.exact:
                    seen["exact"] += 1
                    assert same, (candidates, got.exactness)
                    assert got.exactness.startswith("exact: ")
                    np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
                    # the bound is a real bound: no image outside the candidates reaches it
                    assert want.scores[-1] > got.outside_bound or candidates == 300
                else:
                    seen["unproven"] += 1
                    seen["unproven and wrong"] += not same
                    assert got.exactness.startswith("not proven exact: ")
                    assert "raise --candidates" in got.exactness
                if candidates == 300:
                    assert got.exact and "are the whole gallery" in got.exactness
    # Neither always yes nor always no, and the flag catches the lists that really differ.
    assert seen["exact"] > 250 and seen["unproven"] > 30 and seen["unproven and wrong"] > 5, seen
    # IVF-PQ candidates are never claimed exact unless they are the whole gallery.
    ivf = build_index(
        g.features, g.pids, g.cams, g.times, kind="ivf-pq", nlist=4, m=4, nbits=4, threads=1
    )
    ivf.nprobe = 1
    for result in search_index(ivf, q.features, q.cams, q.times, st_model=st, candidates=50):
        assert not result.exact and result.exactness.startswith("approximate: ")


# 16 bytes of codes per 128-byte vector either way: 32 four-bit codes (FAISS's fast scan, the
# default; its look-up tables are rounded to 8 bits, so PQ scores alone rank less well) or 16
# eight-bit codes.
@pytest.mark.parametrize(("m", "nbits", "pq_recall"), [(32, 4, 0.65), (16, 8, 0.8)])
def test_ivf_pq_finds_most_true_neighbours_in_a_fraction_of_the_memory(
    m, nbits, pq_recall, tmp_path
):
    x = _clustered(3000, 32, 40, seed=1)
    queries = _clustered(50, 32, 40, seed=2)
    index = build_index(
        x, np.arange(3000), np.zeros(3000), kind="ivf-pq", nlist=40, m=m, nbits=nbits, threads=1
    )
    assert isinstance(index.index, faiss.IndexIVFPQFastScan) == (nbits == 4)
    some_rows = np.array([5, 0, 2999, 7, 5])
    quantised = index.index.reconstruct_batch(some_rows)  # FAISS's own, before the index is saved
    index.save(tmp_path / "g.faiss")
    loaded = GalleryIndex.load(tmp_path / "g.faiss", nprobe=8)
    assert loaded.kind == "ivf-pq" and loaded.nprobe == 8 and loaded.metadata["m"] == m
    assert loaded.metadata["code_bytes"] == 16 and loaded.metadata["nbits"] == nbits
    _, rows = loaded.search(queries, 10)
    truth, _ = _brute_force_top_k(x, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth, strict=True)])
    assert recall >= pq_recall
    assert (tmp_path / "g.faiss").stat().st_size < 0.5 * x.nbytes
    assert loaded.vectors is None and not vectors_file(tmp_path / "g.faiss").exists()
    # Without vectors a result's features are the stored codes, decoded (FAISS's reconstruct of a
    # fast-scan index read from a file crashes the process).
    np.testing.assert_array_equal(loaded.side(some_rows).features, quantised)

    # With the exact vectors kept on disk, the top candidates are re-scored exactly.
    index.vectors = x
    index.save(tmp_path / "v.faiss")
    kept = GalleryIndex.load(tmp_path / "v.faiss", nprobe=8)
    assert isinstance(kept.vectors, np.memmap) and kept.vectors.shape == x.shape
    scores, rows = kept.search(queries, 10)
    truth, truth_scores = _brute_force_top_k(x, queries, 10)
    rescored = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth, strict=True)])
    assert rescored >= max(recall, 0.95)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    np.testing.assert_allclose(scores, np.einsum("qkd,qd->qk", unit[rows], q), atol=1e-5)
    np.testing.assert_allclose(kept.side(rows[0]).features, unit[rows[0]], atol=1e-6)
    # a vectors file of another shape is refused
    np.save(vectors_file(tmp_path / "v.faiss"), unit[:10])
    with pytest.raises(ReIDError, match="v.faiss.vectors.npy: holds \\(10, 32\\) vectors"):
        GalleryIndex.load(tmp_path / "v.faiss")


def test_bad_indexes_and_queries_are_one_line(tmp_path, capsys):
    fs = _features_file(tmp_path / "f.npz")
    out = tmp_path / "g.faiss"
    assert cli.main(["index", "build", str(tmp_path / "f.npz"), "--out", str(out)]) == 0
    _features_file(tmp_path / "other.npz", n_gallery=120, seed=3)
    other = tmp_path / "o.faiss"
    assert cli.main(["index", "build", str(tmp_path / "other.npz"), "--out", str(other)]) == 0
    index = GalleryIndex.load(out)
    with pytest.raises(ReIDError, match="are 8-d but the index .* holds 16-d"):
        index.search(np.ones((1, 8)), 5)
    # a side file whose arrays do not match the index's vectors
    with np.load(side_file(out)) as npz:
        arrays = dict(npz)
    arrays["pids"] = arrays["pids"][:-1]
    np.savez(side_file(tmp_path / "short.faiss"), **arrays)
    (tmp_path / "short.faiss").write_bytes(out.read_bytes())
    with pytest.raises(ReIDError, match="'pids' has shape \\(299,\\), the index holds 300"):
        GalleryIndex.load(tmp_path / "short.faiss")
    # a side file paired with another index
    (tmp_path / "swap.faiss").write_bytes(other.read_bytes())
    side_file(tmp_path / "swap.faiss").write_bytes(side_file(out).read_bytes())
    with pytest.raises(ReIDError, match="another index file"):
        GalleryIndex.load(tmp_path / "swap.faiss")
    with pytest.raises(ReIDError, match="f.npz: is a features file, not a FAISS index"):
        GalleryIndex.load(tmp_path / "f.npz")
    capsys.readouterr()
    cases = [
        (["--kind", "ivf-pq", "--m", "5"], "--m 5: must divide the feature dimension 16"),
        (["--kind", "ivf-pq", "--nlist", "100000"], "--nlist 100000"),
        (["--threads", "4096"], "--threads 4096: this process may use"),
        (["--kind", "hnsw"], "invalid choice"),
    ]
    for extra, message in cases:
        argv = ["index", "build", str(tmp_path / "f.npz"), "--out", str(tmp_path / "x.faiss")]
        with pytest.raises(SystemExit) if extra[1] == "hnsw" else _no_raise():
            assert cli.main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "x.faiss").exists() and not side_file(tmp_path / "x.faiss").exists()
    assert len(fs.gallery) == len(index)


def test_search_cli_on_a_default_ivf_pq_index(tmp_path):
    # A separate process: the crash this guards against was a segmentation fault.
    _features_file(tmp_path / "f.npz")
    out = tmp_path / "g.faiss"
    build = ["-q", "index", "build", str(tmp_path / "f.npz"), "--out", str(out), "--kind", "ivf-pq"]
    assert cli.main(build) == 0
    argv = [sys.executable, "-m", "mtmct_reid", "search", "--index", str(out), "--features"]
    argv += [str(tmp_path / "f.npz"), "--query-index", "0", "--top-k", "5"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "approximate" in done.stdout + done.stderr


def test_rebuilding_replaces_the_index_and_faiss_adds_no_noise(tmp_path):
    # A fresh process: FAISS's loader logs only on its first import.
    _features_file(tmp_path / "f.npz", n_gallery=227)
    out = tmp_path / "g.faiss"
    argv = [sys.executable, "-m", "mtmct_reid", "index", "build", str(tmp_path / "f.npz")]
    argv += ["--out", str(out), "--kind", "ivf-pq", "--nlist", "16"]
    for _ in range(2):  # the second build replaces an index: the same kind, no --force needed
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        # 227 points for 16 cells: FAISS's advice once, in our words, not once per sub-quantiser.
        assert done.stderr.count("FAISS advises at least 624") == 1, done.stderr
        assert len(done.stderr.splitlines()) <= 3, done.stderr
        assert "WARNING clustering" not in done.stderr and "faiss.loader" not in done.stderr
    assert describe_file(out) == "a FAISS index"
    assert len(GalleryIndex.load(out)) == 227


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_missing_faiss_names_the_extra(tmp_path, capsys, monkeypatch):
    _features_file(tmp_path / "f.npz")
    monkeypatch.setitem(sys.modules, "faiss", None)
    argv = ["index", "build", str(tmp_path / "f.npz"), "--out", str(tmp_path / "g.faiss")]
    assert cli.main(argv) == 2
    assert "pip install 'mtmct-reid[index]'" in capsys.readouterr().err
    assert not (tmp_path / "g.faiss").exists()


def test_search_cli_with_an_index_prints_the_ranking_of_the_whole_gallery(tmp_path, capsys):
    fs = _features_file(tmp_path / "f.npz")
    TransitTimeModel.fit(fs.gallery.pids, fs.gallery.cams, fs.gallery.times, bin_width=50).save(
        tmp_path / "st.npz"
    )
    assert (
        cli.main(["index", "build", str(tmp_path / "f.npz"), "--out", str(tmp_path / "g.faiss")])
        == 0
    )
    query = ["search", "--features", str(tmp_path / "f.npz"), "--query-index", "0", "3"]
    query += ["--st-model", str(tmp_path / "st.npz"), "--top-k", "8"]
    capsys.readouterr()
    assert cli.main(query) == 0
    plain = capsys.readouterr().out.splitlines()
    assert cli.main([*query, "--index", str(tmp_path / "g.faiss"), "--candidates", "300"]) == 0
    indexed = capsys.readouterr().out.splitlines()
    assert plain[0].startswith("gallery: 300 images") and "(flat index)" in indexed[0]
    # Each query's table is followed by its exactness line.
    exactness = [line for line in indexed if line.startswith("exact: ")]
    assert exactness == ["exact: the 300 candidates are the whole gallery"] * 2
    assert plain[1:] == [line for line in indexed[1:] if not line.startswith("exact: ")]
    assert "ranked by visual+st" in plain[3]
    # FAISS threads: at most the usable cores, and only with --index
    assert cli.main([*query, "--index", str(tmp_path / "g.faiss"), "--threads", "4096"]) == 2
    assert "--threads 4096: this process may use" in capsys.readouterr().err
    assert cli.main([*query, "--threads", "1"]) == 2
    assert "--threads goes with --index" in capsys.readouterr().err
    assert cli.main([*query, "--index", str(tmp_path / "g.faiss"), "--threads", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == indexed[1:]
    # a query of another dimension than the index's
    _features_file(tmp_path / "small.npz", dim=8)
    argv = ["search", "--features", str(tmp_path / "small.npz"), "--query-index", "0"]
    assert cli.main([*argv, "--index", str(tmp_path / "g.faiss")]) == 2
    err = capsys.readouterr().err
    assert "gives 8-d features but the gallery" in err and err.count("\n") == 1
