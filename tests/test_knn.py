"""kNN: faiss and torch agree with a float64 brute force; backend selection and validation."""

import numpy as np
import pytest
import torch

from iadbench.errors import ConfigError
from iadbench.methods import knn as knn_mod
from iadbench.methods.knn import KnnIndex, knn, resolve_backend

faiss = pytest.importorskip("faiss")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(90, 16)).astype(
        np.float32
    )


def brute_force(queries, bank, k):
    sq = np.square(queries[:, None, :].astype(np.float64) - bank[None]).sum(-1)
    idx = np.argsort(sq, axis=1)[:, :k]
    return np.sqrt(np.take_along_axis(sq, idx, 1)), idx


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_backends_match_brute_force(data, k, backend):
    bank, queries = data
    dists, idx = knn(queries, bank, k=k, backend=backend)
    ref_d, ref_i = brute_force(queries, bank, k)
    assert dists.dtype == torch.float32 and idx.dtype == torch.int64
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(dists.numpy(), ref_d, rtol=1e-5, atol=1e-5)


def test_torch_chunking_does_not_change_results(data):
    bank, queries = data
    whole = KnnIndex(bank, backend="torch").search(queries, 3)
    chunked = KnnIndex(bank, backend="torch", chunk_elems=700).search(queries, 3)
    assert torch.equal(whole[1], chunked[1])
    torch.testing.assert_close(whole[0], chunked[0])


def test_backend_resolution(monkeypatch):
    assert resolve_backend("auto") == "torch"  # on every device: faster than faiss on CPU too
    assert resolve_backend("faiss") == "faiss"
    assert resolve_backend("torch") == "torch"
    with pytest.raises(ConfigError, match="unknown knn_backend"):
        resolve_backend("annoy")
    monkeypatch.setattr(knn_mod, "_faiss", lambda: None)
    assert resolve_backend("auto") == "torch"
    with pytest.raises(ConfigError, match="not installed"):
        resolve_backend("faiss")


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_k_is_validated(data, backend):
    bank, queries = data
    with pytest.raises(ValueError, match="bank size"):
        KnnIndex(bank[:4], backend=backend).search(queries, 5)
