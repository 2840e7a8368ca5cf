"""The local model run by onnxruntime: the ``onnx`` and ``onnx-int8`` backends.

Same model, same tokenizer, same pooling as :class:`SentenceTransformerEmbedder`, but the
transformer runs as an ONNX graph (exported once per model version, see
:mod:`enrichment.embedders.onnx_cache`), which on a CPU takes about half PyTorch's time for
short texts (onnx-int8: about a quarter). ``onnx`` gives PyTorch's vectors (verified: every
probe within 1e-4 cosine); ``onnx-int8`` gives approximate ones.

The backend is part of the model version (``all-MiniLM-L6-v2@<hash>/onnx``), so its vectors go
to their own table and never mix with another backend's: switching backend is a re-embed
through the blue-green path.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from enrichment.embedders.base import EmbeddingError, Vector, check_vector
from enrichment.embedders.local import DEFAULT_BATCH_SIZE, resolve_model
from enrichment.embedders.model_files import LocalModel, describe_model
from enrichment.embedders.onnx_cache import (
    ONNX_BACKENDS,
    ExportedModel,
    OnnxBackend,
    export_dir,
    open_verified,
    prepare,
)
from enrichment.embedders.onnx_runtime import OnnxEncoder
from enrichment.embedders.onnx_verification import Verification
from enrichment.errors import InvalidInput
from enrichment.settings import get_settings

_loaded: dict[tuple[str, str], tuple[ExportedModel, OnnxEncoder, Verification]] = {}
_loaded_lock = threading.Lock()


def default_cache_dir(data_dir: Path | None = None) -> Path:
    """Exported models live under the data directory (default: the settings', that is
    ``ENRICH_DATA_DIR`` or ``.enrich``)."""
    return (data_dir if data_dir is not None else get_settings().data_dir) / "models"


def default_device() -> str:
    """``"cuda"`` where onnxruntime has its CUDA provider (onnxruntime-gpu), else ``"cpu"``."""
    import onnxruntime

    return "cuda" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"


def check_device(device: str) -> None:
    """``cpu`` always; ``cuda`` only where onnxruntime was built with its CUDA provider."""
    if device == "cpu":
        return
    if device != "cuda":
        raise InvalidInput("embedding.device", f"expected cpu or cuda, got {device!r}")
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise InvalidInput(
            "embedding.device",
            "cuda needs onnxruntime with the CUDA execution provider (onnxruntime-gpu); this "
            f"one has {', '.join(available)}. Use device cpu, or backend torch on the GPU",
        )


def load(
    model: LocalModel, backend: OnnxBackend, cache_dir: Path, device: str
) -> tuple[ExportedModel, OnnxEncoder, Verification]:
    """The verified export and its encoder, once per process per (export, device): exported
    first if the cache has none (one process exports, the others wait for it)."""
    key = (str(export_dir(cache_dir, model, backend)), device)
    with _loaded_lock:
        found = _loaded.get(key)
        if found is None:
            exported = prepare(model, backend, cache_dir)
            encoder, verification = open_verified(exported, device=device)
            found = _loaded[key] = (exported, encoder, verification)
        return found


class OnnxEmbedder:
    """Embeds texts with the local model exported to ONNX, into unit-length float32 vectors.

    Nothing is exported or loaded until the first ``embed`` (``dimensions`` and
    ``model_version`` read the model's files only). The first ``embed`` of a process checks the
    export against the PyTorch vectors recorded with it and raises
    :class:`~enrichment.embedders.onnx_verification.ModelVerificationFailed` (stopping the run, not
    failing records) when they differ beyond the backend's tolerance.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_name: str | None = None,
        backend: OnnxBackend = "onnx",
        device: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_dir: str | Path | None = None,
    ) -> None:
        if backend not in ONNX_BACKENDS:
            raise InvalidInput("embedding.backend", f"expected onnx or onnx-int8, got {backend!r}")
        if batch_size < 1:
            raise InvalidInput("batch_size", f"must be >= 1, got {batch_size}")
        path, name = resolve_model(model_path, model_name)
        self._model = describe_model(path, name)
        self._backend: OnnxBackend = backend
        self._device = device or default_device()
        check_device(self._device)
        self._batch_size = batch_size
        self._cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._loaded: tuple[ExportedModel, OnnxEncoder, Verification] | None = None

    @property
    def model_name(self) -> str:
        return self._model.name

    @property
    def model_version(self) -> str:
        """``name@<hash of the model files>/<backend>``: another backend is another version."""
        return self._model.version(self._backend)

    @property
    def dimensions(self) -> int:
        return self._model.spec.dimensions

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads per text; the rest of a longer text is ignored."""
        return self._model.spec.max_seq_length

    @property
    def backend(self) -> OnnxBackend:
        return self._backend

    @property
    def device(self) -> str:
        return self._device

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def cache_dir(self) -> Path:
        return self._cache_dir

    @property
    def export_directory(self) -> Path:
        """Where the export this embedder serves is (or will be) cached."""
        return export_dir(self._cache_dir.resolve(), self._model, self._backend)

    def export(self) -> ExportedModel:
        """The verified export this embedder serves (exported now if needed)."""
        return self._load()[0]

    def encoder(self) -> OnnxEncoder:
        """The loaded model alone (what ``embed`` calls, without the vector checks)."""
        return self._load()[1]

    @property
    def verification(self) -> Verification:
        """This process's check of the export against the recorded PyTorch vectors."""
        return self._load()[2]

    def embed(self, texts: Sequence[str]) -> list[Vector | EmbeddingError]:
        """One unit-length float32 vector per text, in order (an error where one is unusable)."""
        if not texts:
            return []
        encoder = self._load()[1]
        vectors = encoder.encode(texts, batch_size=self._batch_size)
        return [
            check_vector(vector, model=self.model_name, dimensions=self.dimensions)
            for vector in vectors
        ]

    def _load(self) -> tuple[ExportedModel, OnnxEncoder, Verification]:
        if self._loaded is None:
            self._loaded = load(self._model, self._backend, self._cache_dir.resolve(), self._device)
        return self._loaded
