"""Running an exported sentence-transformers model with onnxruntime.

sentence-transformers computes a vector in three steps around the transformer: tokenize
(truncate to the model's ``max_seq_length``, pad to the longest text of the batch), run the
transformer, pool its token states (mean over the real tokens, or the first token) and
L2-normalise. Only the transformer is in the ONNX graph; this module does the other steps the
same way, with the model's own ``tokenizers`` tokenizer and numpy, so no PyTorch is needed to
serve.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

Pooling = Literal["mean", "cls"]


@dataclass(frozen=True)
class ModelSpec:
    """What the runtime needs besides the graph to reproduce sentence-transformers' vectors."""

    dimensions: int
    max_seq_length: int
    pooling: Pooling
    lowercase: bool
    pad_id: int
    pad_token: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            dimensions=int(data["dimensions"]),
            max_seq_length=int(data["max_seq_length"]),
            pooling="cls" if data["pooling"] == "cls" else "mean",
            lowercase=bool(data["lowercase"]),
            pad_id=int(data["pad_id"]),
            pad_token=str(data["pad_token"]),
        )


def available_threads() -> int:
    """CPUs this process may run on: onnxruntime's default counts the machine's cores, which
    oversubscribes a container limited to fewer."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def providers_for(device: str) -> list[str]:
    """onnxruntime execution providers for ``cpu`` or ``cuda`` (CUDA falls back to the CPU for
    the operators it lacks)."""
    return (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device == "cuda"
        else ["CPUExecutionProvider"]
    )


def load_tokenizer(path: Path, spec: ModelSpec) -> Tokenizer:
    """The model's tokenizer, truncating and padding as sentence-transformers does.

    A ``tokenizer.json`` may carry its own truncation and fixed padding (all-MiniLM-L6-v2's
    says 128 tokens, padded to 128); both are replaced by the model's ``max_seq_length`` and
    padding to the longest text of the batch.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=spec.max_seq_length, strategy="longest_first")
    tokenizer.enable_padding(direction="right", pad_id=spec.pad_id, pad_token=spec.pad_token)
    return tokenizer


class OnnxEncoder:
    """Texts in, unit-length float32 vectors out: tokenizer → ONNX transformer → pooling."""

    def __init__(
        self,
        model_file: Path,
        tokenizer_file: Path,
        spec: ModelSpec,
        *,
        device: str = "cpu",
    ) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = available_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: the fused graph's notes are noise
        self.spec = spec
        self.session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            str(model_file), options, providers=providers_for(device)
        )
        self._inputs = {item.name for item in self.session.get_inputs()}
        self._tokenizer = load_tokenizer(tokenizer_file, spec)

    def encode(self, texts: Sequence[str], *, batch_size: int) -> NDArray[np.float32]:
        """One unit-length row per text, in order. Texts are batched longest first, as
        sentence-transformers batches them, so a batch pads little."""
        vectors = np.empty((len(texts), self.spec.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda index: -len(texts[index]))
        for start in range(0, len(order), batch_size):
            positions = order[start : start + batch_size]
            vectors[positions] = self._encode_batch([texts[index] for index in positions])
        return vectors

    def _encode_batch(self, texts: list[str]) -> NDArray[np.float32]:
        if self.spec.lowercase:
            texts = [text.lower() for text in texts]
        encodings = self._tokenizer.encode_batch(texts)
        input_ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.array(
                [encoding.type_ids for encoding in encodings], dtype=np.int64
            )
        (hidden,) = self.session.run(["last_hidden_state"], feed)
        return normalise(pool(np.asarray(hidden, dtype=np.float32), mask, self.spec.pooling))


def pool(hidden: NDArray[np.float32], mask: NDArray[np.int64], how: Pooling) -> NDArray[np.float32]:
    """sentence-transformers' pooling: the mean of the real tokens' states (padding excluded),
    or the first token's state."""
    if how == "cls":
        return hidden[:, 0, :]
    weights = mask[:, :, np.newaxis].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    return np.asarray(summed / counts, dtype=np.float32)


def normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit length (a zero row stays zero), as ``normalize_embeddings=True``."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.clip(norms, 1e-12, None), dtype=np.float32)
