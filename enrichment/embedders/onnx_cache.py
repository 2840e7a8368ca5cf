"""Exported models on disk: one export per model version and backend, made once, verified,
published atomically, shared by every worker that uses the same data directory.

Layout: ``<cache_dir>/onnx/<model name>@<fingerprint of the model files>/<backend>-r<revision>/``
holding ``model.onnx``, ``tokenizer.json``, ``probe-reference.npy`` (PyTorch's vectors of the
probe texts) and ``manifest.json`` (what was exported from what, with which versions, how it
verified, and the files' SHA-256). A changed model has another fingerprint, so it is exported
afresh; a changed export recipe bumps :data:`EXPORT_REVISION`. Old versions are left in place
(a worker of the previous release may still start with them); delete them at will.

Concurrency: an export runs under an exclusive ``flock`` per model version, in a temporary
directory that is renamed into place only when complete (manifest last, files flushed). Workers
that start together export once; a reader never sees a half-written export. A cached export
whose files no longer match their recorded hashes is replaced, never served.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from enrichment.embedders.model_files import TOKENIZER_FILE, LocalModel
from enrichment.embedders.onnx_export import (
    OPSET,
    QUANTIZATION,
    RECIPE,
    export_transformer,
    quantize,
    torch_vectors,
)
from enrichment.embedders.onnx_runtime import ModelSpec, OnnxEncoder
from enrichment.embedders.onnx_verification import (
    PROBE_BATCH_SIZE,
    PROBE_TEXTS,
    TOLERANCE,
    ModelVerificationFailed,
    Verification,
    verify,
)
from enrichment.errors import EnrichmentError

log = logging.getLogger(__name__)

OnnxBackend = Literal["onnx", "onnx-int8"]
ONNX_BACKENDS: Final = ("onnx", "onnx-int8")

EXPORT_REVISION: Final = 1  # bump when the export recipe changes what is exported
MODEL_FILE: Final = "model.onnx"
REFERENCE_FILE: Final = "probe-reference.npy"
MANIFEST_FILE: Final = "manifest.json"


class ModelExportFailed(EnrichmentError):
    """The model could not be exported (or quantized): a fault of the installation, not of the
    records, so it stops the run instead of failing them."""


@dataclass(frozen=True)
class ExportedModel:
    """A verified export in the cache."""

    directory: Path
    backend: str
    model_version: str
    spec: ModelSpec
    probe_texts: tuple[str, ...]
    verification: Verification
    manifest: dict[str, Any]

    @property
    def model_file(self) -> Path:
        return self.directory / MODEL_FILE

    @property
    def tokenizer_file(self) -> Path:
        return self.directory / TOKENIZER_FILE

    def reference(self) -> NDArray[np.float32]:
        """PyTorch's vectors of the probe texts, computed when the model was exported."""
        return np.asarray(np.load(self.directory / REFERENCE_FILE, allow_pickle=False), np.float32)

    def encoder(self, *, device: str = "cpu") -> OnnxEncoder:
        return OnnxEncoder(self.model_file, self.tokenizer_file, self.spec, device=device)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def model_cache_dir(cache_dir: Path, model: LocalModel) -> Path:
    """Where every backend's export of this model version lives."""
    return cache_dir / "onnx" / f"{_slug(model.name)}@{model.fingerprint}"


def export_dir(cache_dir: Path, model: LocalModel, backend: str) -> Path:
    return model_cache_dir(cache_dir, model) / f"{backend}-r{EXPORT_REVISION}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_export(directory: Path, model: LocalModel, backend: str) -> ExportedModel | None:
    """The export in ``directory`` if it is complete, of this model and revision, and its
    files still have the hashes it was written with; None otherwise (absent or damaged)."""
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        if (
            manifest.get("revision") != EXPORT_REVISION
            or manifest.get("backend") != backend
            or manifest.get("model_version") != model.version(backend)
        ):
            return None
        for name, digest in manifest["sha256"].items():
            if _sha256(directory / name) != digest:
                log.warning("%s: %s does not match its recorded hash", directory, name)
                return None
        return ExportedModel(
            directory=directory,
            backend=backend,
            model_version=manifest["model_version"],
            spec=ModelSpec.from_json(manifest["spec"]),
            probe_texts=tuple(manifest["probe_texts"]),
            verification=Verification.from_json(manifest["verification"]),
            manifest=manifest,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


_process_lock = threading.Lock()  # flock serialises processes; this, threads of one process


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold the model version's export lock (blocks while another process exports)."""
    directory.mkdir(parents=True, exist_ok=True)
    with _process_lock, (directory / ".lock").open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Exporter = Callable[[LocalModel, Path], None]


def prepare(
    model: LocalModel,
    backend: OnnxBackend,
    cache_dir: Path,
    *,
    exporter: Exporter | None = None,
) -> ExportedModel:
    """The verified export of ``model`` for ``backend``, from the cache or exported now.

    Raises :class:`ModelVerificationFailed` when a fresh export does not reproduce PyTorch's
    vectors within the backend's tolerance (nothing is cached then). ``exporter`` replaces
    :func:`export_transformer` (it writes the float32 graph to the given file).
    """
    target = export_dir(cache_dir, model, backend)
    found = read_export(target, model, backend)
    if found is not None:
        return found
    with _exclusive(model_cache_dir(cache_dir, model)):
        return _prepare_locked(model, backend, cache_dir, exporter or export_transformer)


def _prepare_locked(
    model: LocalModel, backend: OnnxBackend, cache_dir: Path, exporter: Exporter
) -> ExportedModel:
    target = export_dir(cache_dir, model, backend)
    found = read_export(target, model, backend)
    if found is not None:  # another process exported it while this one waited
        return found
    _remove_leftovers(model_cache_dir(cache_dir, model))
    if target.exists():  # damaged or of another revision: moved aside, then removed
        stale = target.with_name(f".stale-{uuid.uuid4().hex[:8]}")
        target.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    float_export = (
        _prepare_locked(model, "onnx", cache_dir, exporter) if backend != "onnx" else None
    )
    work = target.with_name(f".tmp-{backend}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    work.mkdir(parents=True)
    try:
        try:
            if float_export is None:
                details = _export_float(model, work, exporter)
            else:
                details = _quantize(float_export, work)
        except Exception as err:
            raise ModelExportFailed(
                f"could not export {model.version(backend)} from {model.path}: "
                f"{type(err).__name__}: {err}; use backend torch"
            ) from err
        exported = _finish(model, backend, work, details)
        _publish(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info(
        "exported %s to %s in %.1f s; %s",
        exported.model_version,
        target,
        details["seconds"],
        exported.verification.describe(),
    )
    return replace(exported, directory=target)


def _remove_leftovers(directory: Path) -> None:
    """Temporary directories of exports that died (this process holds the lock, so no live
    export owns them)."""
    for leftover in directory.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in directory.glob(".stale-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _export_float(model: LocalModel, work: Path, exporter: Exporter) -> dict[str, Any]:
    started = time.perf_counter()
    exporter(model, work / MODEL_FILE)
    shutil.copyfile(model.transformer_dir / TOKENIZER_FILE, work / TOKENIZER_FILE)
    reference = torch_vectors(model, PROBE_TEXTS, batch_size=PROBE_BATCH_SIZE)
    np.save(work / REFERENCE_FILE, reference, allow_pickle=False)
    return {
        "seconds": time.perf_counter() - started,
        "recipe": RECIPE,
        "opset": OPSET,
        "quantization": None,
    }


def _quantize(float_export: ExportedModel, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    quantize(float_export.model_file, work / MODEL_FILE)
    shutil.copyfile(float_export.tokenizer_file, work / TOKENIZER_FILE)
    shutil.copyfile(float_export.directory / REFERENCE_FILE, work / REFERENCE_FILE)
    return {
        "seconds": time.perf_counter() - started,
        "recipe": f"{RECIPE}; then {QUANTIZATION}",
        "from": f"{float_export.directory.name}/{MODEL_FILE}",
        "opset": OPSET,
        "quantization": QUANTIZATION,
    }


def _finish(
    model: LocalModel, backend: OnnxBackend, work: Path, details: dict[str, Any]
) -> ExportedModel:
    """Verify the export in ``work`` against PyTorch's probe vectors and write its manifest
    (last: a directory with a manifest is complete)."""
    reference = np.load(work / REFERENCE_FILE, allow_pickle=False).astype(np.float32)
    encoder = OnnxEncoder(work / MODEL_FILE, work / TOKENIZER_FILE, model.spec)
    vectors = encoder.encode(PROBE_TEXTS, batch_size=PROBE_BATCH_SIZE)
    verification = verify(vectors, reference, PROBE_TEXTS, tolerance=TOLERANCE[backend])
    version = model.version(backend)
    if not verification.passed:
        raise ModelVerificationFailed(
            f"the {backend} export of {version} does not reproduce the torch backend's vectors: "
            f"{verification.describe()}; refusing to serve it (nothing was cached). "
            "Use backend torch."
        )
    manifest = {
        "revision": EXPORT_REVISION,
        "backend": backend,
        "model_name": model.name,
        "model_version": version,
        "fingerprint": model.fingerprint,
        "source": str(model.path),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "spec": model.spec.to_json(),
        "export": details,
        "versions": {
            package: _version(package)
            for package in ("torch", "transformers", "onnx", "onnxruntime", "tokenizers")
        },
        "probe_texts": list(PROBE_TEXTS),
        "verification": {"against": "torch (sentence-transformers)", **verification.to_json()},
        "sha256": {
            name: _sha256(work / name) for name in (MODEL_FILE, TOKENIZER_FILE, REFERENCE_FILE)
        },
    }
    (work / MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return ExportedModel(work, backend, version, model.spec, PROBE_TEXTS, verification, manifest)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _publish(work: Path, target: Path) -> None:
    """Make the finished export visible at once: flush its files, then one rename."""
    for path in work.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    _fsync_dir(work)
    try:
        work.rename(target)
    except OSError:
        # Only possible where the lock is not honoured (a network file system): another
        # process published first; its export is as good as this one.
        shutil.rmtree(work, ignore_errors=True)
        if not (target / MANIFEST_FILE).is_file():
            raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_verified(
    exported: ExportedModel, *, device: str = "cpu"
) -> tuple[OnnxEncoder, Verification]:
    """An encoder for the cached export, after checking that it reproduces the PyTorch
    vectors recorded at export time on this machine and runtime; refuses otherwise."""
    encoder = exported.encoder(device=device)
    vectors = encoder.encode(exported.probe_texts, batch_size=PROBE_BATCH_SIZE)
    verification = verify(
        vectors,
        exported.reference(),
        exported.probe_texts,
        tolerance=TOLERANCE[exported.backend],
    )
    if not verification.passed:
        raise ModelVerificationFailed(
            f"the cached {exported.backend} export of {exported.model_version} in "
            f"{exported.directory} gives vectors here (onnxruntime {_version('onnxruntime')}, "
            f"{device}) that differ from the torch backend's: {verification.describe()}; "
            f"refusing to serve it. Delete {exported.directory} to export it again on this "
            "machine, or use backend torch.",
            directory=exported.directory,
        )
    return encoder, verification
