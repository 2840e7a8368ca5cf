"""The local sentence-transformers embedder with the real packaged all-MiniLM-L6-v2 (offline).

Slow: importing sentence-transformers and loading the model take most of the ~10 s.
"""

from __future__ import annotations

import numpy as np
import pytest

from enrichment.embedders import Embedder, EmbeddingError, Vector
from enrichment.embedders.local import (
    DEFAULT_MODEL_NAME,
    SentenceTransformerEmbedder,
    load_model,
    packaged_model_path,
)
from enrichment.errors import InvalidInput

pytestmark = pytest.mark.slow

TEXTS = [
    "A fast HTTP client library for Python with async support.",
    "An asynchronous library for making HTTP requests in Python.",
    "Tools for plotting astronomical star charts.",
]


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(device="cpu")


def vectors(results: list[Vector | EmbeddingError]) -> list[Vector]:
    assert all(isinstance(result, np.ndarray) for result in results), results
    return [result for result in results if isinstance(result, np.ndarray)]


def test_packaged_model_gives_384_dimensional_unit_float32_vectors(embedder):
    results = vectors(embedder.embed(TEXTS))

    assert embedder.dimensions == 384
    assert len(results) == len(TEXTS)
    for vector in results:
        assert vector.dtype == np.float32
        assert vector.shape == (384,)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_similar_texts_are_closer_than_unrelated_ones(embedder):
    http_client, http_requests, star_charts = vectors(embedder.embed(TEXTS))

    assert float(http_client @ http_requests) > float(http_client @ star_charts) + 0.3


def test_same_text_gives_the_same_vector_alone_or_in_a_batch(embedder):
    (alone,) = vectors(embedder.embed([TEXTS[2]]))
    batched = vectors(embedder.embed(TEXTS))[2]

    np.testing.assert_allclose(alone, batched, atol=1e-5)
    np.testing.assert_array_equal(alone, vectors(embedder.embed([TEXTS[2]]))[0])


def test_empty_list_gives_empty_list(embedder):
    assert embedder.embed([]) == []


def test_model_version_names_the_model_and_the_torch_backend(embedder):
    version = embedder.model_version

    assert embedder.model_name == DEFAULT_MODEL_NAME == "all-MiniLM-L6-v2"
    assert version.startswith(f"{DEFAULT_MODEL_NAME}@")
    assert version.endswith("/torch")
    assert version == SentenceTransformerEmbedder(device="cpu").model_version


def test_model_version_changes_when_the_model_files_change(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"hidden_size": 384}')
    before = SentenceTransformerEmbedder(model_dir, device="cpu").model_version

    (model_dir / "config.json").write_text('{"hidden_size": 768}')

    assert SentenceTransformerEmbedder(model_dir, device="cpu").model_version != before
    assert before.startswith("model@")


def test_loading_twice_reuses_the_cached_model(embedder):
    other = SentenceTransformerEmbedder(device="cpu", batch_size=4)
    other.embed(["warm"])

    assert load_model(packaged_model_path(), "cpu") is load_model(packaged_model_path(), "cpu")
    assert other._model() is embedder._model()


def test_embedder_satisfies_the_interface_and_exposes_max_sequence_length(embedder):
    assert isinstance(embedder, Embedder)
    assert embedder.max_seq_length == 256
    assert embedder.device == "cpu"


def test_missing_model_directory_is_rejected_before_loading(tmp_path):
    with pytest.raises(InvalidInput, match="model_path"):
        SentenceTransformerEmbedder(tmp_path / "absent")
