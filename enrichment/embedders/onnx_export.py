"""Turning the local model into ONNX: export, operator fusion, int8 quantization, and the
PyTorch reference vectors the result is checked against.

Why not sentence-transformers' own ONNX backend: it needs ``optimum-onnx``, whose release pins
transformers 4.x and breaks sentence-transformers 6 (``optimum-intel``, the OpenVINO route,
cannot be installed with the pinned stack either). So the transformer alone (token ids in,
token states out) is exported here with ``torch.onnx.export``, using the TorchScript exporter
(``dynamo=False``: the dynamo exporter needs ``onnxscript``), its operators are fused with
onnxruntime's transformer optimizer, and tokenizing, pooling and normalising are done by
:mod:`enrichment.embedders.onnx_runtime` exactly as sentence-transformers does them.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from enrichment.embedders.local import offline
from enrichment.embedders.model_files import TOKENIZER_FILE, LocalModel
from enrichment.embedders.onnx_runtime import load_tokenizer

log = logging.getLogger(__name__)

OPSET: Final = 17
RECIPE: Final = (
    "torch.onnx.export (TorchScript exporter, eager attention), "
    "onnxruntime transformer optimizer (fused attention, layer norms, GELU)"
)
QUANTIZATION: Final = "dynamic int8 (onnxruntime quantize_dynamic): int8 weights per channel"


def quantize(source: Path, destination: Path) -> None:
    """Dynamic int8 quantization of the float graph's weights, one scale per output channel
    (one scale per tensor moves vectors about five times further: mean cosine 0.95 to
    PyTorch's instead of 0.99); activations are quantized on the fly, per batch."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings(), _quiet_onnxruntime():
        warnings.simplefilter("ignore")
        quantize_dynamic(
            str(source),
            str(destination),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # The fused operators have no shape-inferred output types; they are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


class _BelowErrorFrom(logging.Filter):
    """Drops records below ERROR logged by code inside ``package``."""

    def __init__(self, package: Path) -> None:
        super().__init__()
        self.package = str(package)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.pathname.startswith(self.package)


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """onnxruntime's optimizer and quantizer log every fused node and a tip at INFO/WARNING,
    some of it on the root logger: kept out of the application's logs during an export."""
    import onnxruntime

    quiet = _BelowErrorFrom(Path(onnxruntime.__file__).parent)
    targets: list[logging.Filterer] = [logging.root, *logging.root.handlers]
    for target in targets:
        target.addFilter(quiet)
    try:
        yield
    finally:
        for target in targets:
            target.removeFilter(quiet)


# --- PyTorch: the export and the reference vectors --------------------------------------------


def torch_vectors(
    model: LocalModel, texts: Sequence[str], *, batch_size: int
) -> NDArray[np.float32]:
    """The torch backend's vectors, computed as :class:`SentenceTransformerEmbedder` does.

    The model is loaded here on the CPU and not kept: a process serving ONNX should not hold
    a PyTorch copy of the model for the rest of its life.
    """
    offline()
    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(
        str(model.path), device="cpu", backend="torch", local_files_only=True
    )
    vectors = st_model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=False,
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def export_transformer(model: LocalModel, destination: Path) -> None:
    """Export the transformer (token ids in, token states out) to ``destination``.

    Eager attention is exported rather than SDPA: onnxruntime's optimizer recognises its
    pattern and fuses each layer into one ``Attention`` operator (with ``EmbedLayerNorm``,
    ``SkipLayerNorm`` and ``BiasGelu``), which is most of the ONNX backend's speed.
    """
    offline()
    import torch
    from transformers import AutoModel

    transformer = AutoModel.from_pretrained(
        str(model.transformer_dir), local_files_only=True, attn_implementation="eager"
    )
    transformer.eval()
    takes_token_types = "token_type_ids" in inspect.signature(transformer.forward).parameters

    class TokenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            names = ("input_ids", "attention_mask", "token_type_ids")
            output = self.transformer(**dict(zip(names, inputs, strict=False)))
            return output.last_hidden_state  # type: ignore[no-any-return]

    # Two texts of different lengths: the traced graph sees real padding.
    tokenizer = load_tokenizer(model.transformer_dir / TOKENIZER_FILE, model.spec)
    sample = tokenizer.encode_batch(["an example text to trace the model with", "a short one"])
    input_ids = torch.tensor([encoding.ids for encoding in sample], dtype=torch.long)
    mask = torch.tensor([encoding.attention_mask for encoding in sample], dtype=torch.long)
    inputs: tuple[torch.Tensor, ...] = (input_ids, mask)
    names = ["input_ids", "attention_mask"]
    if takes_token_types:
        inputs += (torch.zeros_like(input_ids),)
        names.append("token_type_ids")
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on constants that are constant
        torch.onnx.export(
            TokenStates(),
            inputs,
            str(destination),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    _fuse(model, destination)


def _fuse(model: LocalModel, path: Path) -> None:
    """Fuse BERT-family graphs with onnxruntime's transformer optimizer (offline, portable:
    no hardware-specific rewrites); other architectures keep the plain graph."""
    if model.model_type not in ("bert", "roberta", "xlm-roberta"):
        return
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        with _quiet_onnxruntime():
            optimized = optimize_model(
                str(path),
                model_type="bert",
                num_heads=model.attention_heads,
                hidden_size=model.hidden_size,
                opt_level=0,
                use_gpu=False,
            )
    except Exception:  # the plain graph is correct, only slower
        log.warning("could not fuse the ONNX graph of %s; using it unfused", model.name)
        return
    with _quiet_onnxruntime():
        optimized.save_model_to_file(str(path))
