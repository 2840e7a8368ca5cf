"""What a local sentence-transformers model is, read from its files without loading it:
its modules, pooling, maximum sequence length, tokenizer and padding. The ONNX backends need
it to reproduce what sentence-transformers does around the transformer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from enrichment.embedders.local import model_fingerprint
from enrichment.embedders.onnx_runtime import ModelSpec, Pooling
from enrichment.errors import InvalidInput

TOKENIZER_FILE: Final = "tokenizer.json"


@dataclass(frozen=True)
class LocalModel:
    """A local sentence-transformers model, as read from its files."""

    path: Path
    name: str
    fingerprint: str
    transformer_dir: Path
    spec: ModelSpec
    model_type: str
    hidden_size: int
    attention_heads: int

    def version(self, backend: str) -> str:
        return f"{self.name}@{self.fingerprint}/{backend}"


_TRANSFORMER, _POOLING, _NORMALIZE = "Transformer", "Pooling", "Normalize"


def _read_json(path: Path, field: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise InvalidInput(field, f"{str(path)!r} cannot be read as JSON: {err}") from None


def describe_model(path: Path, name: str) -> LocalModel:
    """Read what the export needs from the model's files, without loading it.

    The ONNX backends run the pipeline Transformer → Pooling (mean or CLS) → Normalize, which
    is what sentence-transformers' text embedding models are; anything else (a Dense layer,
    max pooling, ...) is rejected here, naming the setting, rather than served differently.
    """
    field = "embedding.backend"
    modules = _read_json(path / "modules.json", field)
    if modules is None:  # a plain transformer: sentence-transformers adds mean pooling
        modules = [{"path": "", "type": _TRANSFORMER}]
    kinds = [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules]
    unsupported = [kind for kind in kinds if kind not in (_TRANSFORMER, _POOLING, _NORMALIZE)]
    if unsupported or kinds[:1] != [_TRANSFORMER] or kinds.count(_TRANSFORMER) != 1:
        raise InvalidInput(
            field,
            f"model {name!r} has the modules {kinds}; the ONNX backends run Transformer, "
            "Pooling and Normalize only (use backend torch)",
        )
    transformer_dir = path / str(modules[0].get("path") or "")
    config = _read_json(transformer_dir / "config.json", field)
    if not isinstance(config, dict) or "hidden_size" not in config:
        raise InvalidInput(field, f"model {name!r} has no transformer config.json with hidden_size")
    if not (transformer_dir / TOKENIZER_FILE).is_file():
        raise InvalidInput(
            field, f"model {name!r} has no {TOKENIZER_FILE} (a fast tokenizer) to run it with"
        )

    pooling: Pooling = "mean"
    dimensions = int(config["hidden_size"])
    if _POOLING in kinds:
        module = modules[kinds.index(_POOLING)]
        pooling_config = _read_json(path / str(module.get("path") or "") / "config.json", field)
        pooling, dimensions = _pooling(pooling_config or {}, name, dimensions)

    st_config = _read_json(transformer_dir / "sentence_bert_config.json", field) or {}
    tokenizer_config = _read_json(transformer_dir / "tokenizer_config.json", field) or {}
    positions = int(config.get("max_position_embeddings") or 512)
    max_length = st_config.get("max_seq_length") or tokenizer_config.get("model_max_length")
    max_seq_length = min(int(max_length), positions) if max_length else positions
    pad_id, pad_token = _padding(transformer_dir, tokenizer_config, config)
    return LocalModel(
        path=path,
        name=name,
        fingerprint=model_fingerprint(path),
        transformer_dir=transformer_dir,
        spec=ModelSpec(
            dimensions=dimensions,
            max_seq_length=max_seq_length,
            pooling=pooling,
            lowercase=bool(st_config.get("do_lower_case", False)),
            pad_id=pad_id,
            pad_token=pad_token,
        ),
        model_type=str(config.get("model_type", "")),
        hidden_size=int(config["hidden_size"]),
        attention_heads=int(config.get("num_attention_heads") or 0),
    )


def _pooling(config: dict[str, Any], name: str, dimensions: int) -> tuple[Pooling, int]:
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [
            key.removeprefix("pooling_mode_").removesuffix("_token").removesuffix("_tokens")
            for key, value in config.items()
            if key.startswith("pooling_mode_") and value is True
        ]
        mode = modes[0] if len(modes) == 1 else "+".join(modes) or "mean"
    if mode not in ("mean", "cls"):
        raise InvalidInput(
            "embedding.backend",
            f"model {name!r} pools with {mode!r}; the ONNX backends pool with mean or cls only "
            "(use backend torch)",
        )
    return ("cls" if mode == "cls" else "mean"), int(
        config.get("word_embedding_dimension") or dimensions
    )


def _padding(
    transformer_dir: Path, tokenizer_config: dict[str, Any], config: dict[str, Any]
) -> tuple[int, str]:
    """The pad token: the tokenizer's own padding settings, else its declared pad token."""
    tokenizer = _read_json(transformer_dir / TOKENIZER_FILE, "embedding.backend") or {}
    padding = tokenizer.get("padding") or {}
    if "pad_id" in padding and "pad_token" in padding:
        return int(padding["pad_id"]), str(padding["pad_token"])
    token = tokenizer_config.get("pad_token") or "[PAD]"
    if isinstance(token, dict):
        token = token.get("content", "[PAD]")
    vocabulary = (tokenizer.get("model") or {}).get("vocab")
    if isinstance(vocabulary, dict) and token in vocabulary:
        return int(vocabulary[token]), str(token)
    return int(config.get("pad_token_id") or 0), str(token)
