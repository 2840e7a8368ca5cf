"""The onnx and onnx-int8 backends of the local provider, with the real packaged
all-MiniLM-L6-v2: exported once per test session (torch.onnx.export + onnxruntime, about 10 s)
into a temporary data directory that every test shares; tests that damage an export work on a
copy of it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from numpy.typing import NDArray
from onnx import numpy_helper
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from enrichment import cli, vectors
from enrichment.config import ConfigError, LocalEmbedding, parse_config
from enrichment.embedders import Embedder, Vector
from enrichment.embedders.local import (
    SentenceTransformerEmbedder,
    packaged_model_path,
)
from enrichment.embedders.local_onnx import OnnxEmbedder
from enrichment.embedders.model_files import LocalModel, describe_model
from enrichment.embedders.onnx_cache import (
    MANIFEST_FILE,
    MODEL_FILE,
    ExportedModel,
    ModelExportFailed,
    export_dir,
    model_cache_dir,
    prepare,
    read_export,
)
from enrichment.embedders.onnx_verification import TOLERANCE, ModelVerificationFailed
from enrichment.errors import EnrichmentError, InvalidInput
from enrichment.runner import Runner
from enrichment.settings import Settings, get_settings
from enrichment.sources import _HOW_IT_RUNS, build_embedder, build_pipelines, config_hash, sync
from tests.helpers import send

pytestmark = pytest.mark.slow

# Eight topics, four texts each: the neighbours of a text are mostly its own topic's texts.
TOPICS = {
    "http": [
        "A fast HTTP client library for Python with async support.",
        "Make web requests and download pages over HTTPS.",
        "REST API client with retries, timeouts and connection pooling.",
        "An asynchronous web server and HTTP framework.",
    ],
    "database": [
        "PostgreSQL database adapter for Python.",
        "Run SQL queries against a relational database and manage transactions.",
        "Object-relational mapper for SQL databases with schema migrations.",
        "Connection pool and query builder for MySQL and SQLite.",
    ],
    "plots": [
        "Plot charts and graphs of your data.",
        "Interactive scientific visualisation: line plots, histograms and heatmaps.",
        "Draw statistical figures and export them as PNG or SVG.",
        "Dashboards with bar charts and scatter plots in the browser.",
    ],
    "testing": [
        "A testing framework with fixtures and parametrised tests.",
        "Mock objects and assertions for unit tests.",
        "Measure test coverage of your code.",
        "Property-based testing that generates test cases for you.",
    ],
    "crypto": [
        "Encrypt and decrypt data with AES and RSA.",
        "Cryptographic hashing, signatures and key derivation.",
        "Generate secure random passwords and tokens.",
        "TLS certificates and X.509 parsing.",
    ],
    "ml": [
        "Train neural networks on GPUs with automatic differentiation.",
        "Machine learning models for classification and regression.",
        "Sentence embeddings for semantic search.",
        "Gradient boosted decision trees for tabular data.",
    ],
    "dates": [
        "Parse and format dates, times and time zones.",
        "Calendar arithmetic: add months, find business days.",
        "Human-friendly relative times like '3 hours ago'.",
        "Convert timestamps between UTC and local time.",
    ],
    "images": [
        "Open, resize and crop images.",
        "Image processing: filters, edge detection and thumbnails.",
        "Read and write JPEG, PNG and GIF files.",
        "Computer vision: detect faces in photos.",
    ],
}
TEXTS = [text for texts in TOPICS.values() for text in texts]
LONG_TEXT = " ".join(
    f"Section {n}: installing, configuring and running the tool." for n in range(60)
)
# Measured overlap of onnx-int8's 3 nearest neighbours with torch's on TEXTS: 0.96 (92 of 96);
# docs/embedding-backends.md gives it and the recall on 20,000 real texts.
INT8_MIN_OVERLAP_AT_3 = 0.9


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def cache_dir(data_dir: Path) -> Path:
    return data_dir / "models"


@pytest.fixture(scope="session")
def onnx_embedder(cache_dir: Path) -> OnnxEmbedder:
    embedder = OnnxEmbedder(backend="onnx", device="cpu", cache_dir=cache_dir)
    embedder.export()
    return embedder


@pytest.fixture(scope="session")
def int8_embedder(cache_dir: Path, onnx_embedder: OnnxEmbedder) -> OnnxEmbedder:
    embedder = OnnxEmbedder(backend="onnx-int8", device="cpu", cache_dir=cache_dir)
    embedder.export()
    return embedder


@pytest.fixture(scope="session")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(device="cpu")


@pytest.fixture(scope="session")
def model() -> LocalModel:
    return describe_model(packaged_model_path(), "all-MiniLM-L6-v2")


def matrix(results: list[Vector | object]) -> NDArray[np.float32]:
    assert all(isinstance(result, np.ndarray) for result in results), results
    return np.stack([result for result in results if isinstance(result, np.ndarray)])


def neighbours(vectors_: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Each row's k most similar other rows, most similar first."""
    similarity = vectors_ @ vectors_.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def copy_exporter(source: ExportedModel, calls: list[str] | None = None):  # type: ignore[no-untyped-def]
    """An exporter that writes the already exported float graph (same weights, so it verifies)
    without paying for a second torch export; records its calls."""

    def export(model: LocalModel, destination: Path) -> None:
        if calls is not None:
            calls.append(model.version("onnx"))
        shutil.copyfile(source.model_file, destination)

    return export


def perturbed(source: Path, destination: Path, *, factor: float = 1.05) -> None:
    """The graph with one weight matrix of its last layer scaled: a subtly wrong export."""
    graph = onnx.load(str(source))
    name = next(
        init.name
        for init in reversed(graph.graph.initializer)
        if len(init.dims) == 2 and init.dims[0] >= 384
    )
    for index, initializer in enumerate(graph.graph.initializer):
        if initializer.name == name:
            weights = numpy_helper.to_array(initializer) * factor
            graph.graph.initializer[index].CopyFrom(numpy_helper.from_array(weights, name))
    onnx.save(graph, str(destination))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- export, cache and verification -----------------------------------------------------------


def test_export_is_cached_in_the_data_directory_keyed_by_model_and_version(
    onnx_embedder: OnnxEmbedder, cache_dir: Path, model: LocalModel
) -> None:
    exported = onnx_embedder.export()

    assert exported.directory == cache_dir / "onnx" / f"all-MiniLM-L6-v2@{model.fingerprint}" / (
        "onnx-r1"
    )
    manifest = json.loads((exported.directory / MANIFEST_FILE).read_text())
    assert manifest["model_version"] == onnx_embedder.model_version
    assert manifest["fingerprint"] == model.fingerprint
    assert manifest["spec"]["max_seq_length"] == 256
    assert sorted(p.name for p in exported.directory.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "probe-reference.npy",
        "tokenizer.json",
    ]


def test_export_is_verified_against_torch_on_the_probe_set(onnx_embedder: OnnxEmbedder) -> None:
    at_export = onnx_embedder.export().verification
    on_load = onnx_embedder.verification

    for verification in (at_export, on_load):
        assert verification.passed
        assert verification.probes == 20
        assert 1.0 - verification.min_cosine <= TOLERANCE["onnx"] == 1e-4


def test_onnx_vectors_match_torch_within_1e_4_cosine_beyond_the_probe_set(
    onnx_embedder: OnnxEmbedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    texts = [*TEXTS, LONG_TEXT, "", "ünïcödé ✓ 漢字"]
    onnx_vectors = matrix(onnx_embedder.embed(texts))
    torch_vectors = matrix(torch_embedder.embed(texts))

    assert onnx_vectors.dtype == np.float32
    assert onnx_vectors.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)
    cosines = (onnx_vectors * torch_vectors).sum(axis=1)
    assert cosines.min() >= 1.0 - 1e-4


def test_texts_beyond_the_maximum_length_are_truncated_like_torch_does(
    onnx_embedder: OnnxEmbedder,
) -> None:
    long_vector, longer_vector = matrix(onnx_embedder.embed([LONG_TEXT, LONG_TEXT + " more" * 300]))

    assert onnx_embedder.max_seq_length == 256
    np.testing.assert_allclose(long_vector, longer_vector, atol=1e-6)


def test_same_text_gives_the_same_vector_alone_or_in_a_batch(onnx_embedder: OnnxEmbedder) -> None:
    (alone,) = matrix(onnx_embedder.embed([TEXTS[5]]))
    batched = matrix(onnx_embedder.embed([LONG_TEXT, *TEXTS]))[6]

    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_torch_and_onnx_give_the_same_nearest_neighbours(
    onnx_embedder: OnnxEmbedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    torch_neighbours = neighbours(matrix(torch_embedder.embed(TEXTS)), 5)
    onnx_neighbours = neighbours(matrix(onnx_embedder.embed(TEXTS)), 5)

    np.testing.assert_array_equal(onnx_neighbours, torch_neighbours)


def test_int8_nearest_neighbours_overlap_the_float_ones_as_documented(
    int8_embedder: OnnxEmbedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    torch_neighbours = neighbours(matrix(torch_embedder.embed(TEXTS)), 3)
    int8_neighbours = neighbours(matrix(int8_embedder.embed(TEXTS)), 3)

    overlap = np.mean(
        [len(set(a) & set(b)) / 3 for a, b in zip(torch_neighbours, int8_neighbours, strict=True)]
    )
    assert overlap >= INT8_MIN_OVERLAP_AT_3
    assert int8_embedder.verification.passed
    assert 1.0 - int8_embedder.verification.min_cosine <= TOLERANCE["onnx-int8"]


def test_int8_export_is_a_quarter_of_the_float_one_and_cached_beside_it(
    onnx_embedder: OnnxEmbedder, int8_embedder: OnnxEmbedder
) -> None:
    float_export, int8_export = onnx_embedder.export(), int8_embedder.export()

    assert int8_export.directory.parent == float_export.directory.parent
    assert int8_export.directory.name == "onnx-int8-r1"
    assert int8_export.model_file.stat().st_size < float_export.model_file.stat().st_size / 3
    assert int8_export.manifest["export"]["quantization"].startswith("dynamic int8")


def test_model_version_names_the_backend(
    onnx_embedder: OnnxEmbedder,
    int8_embedder: OnnxEmbedder,
    torch_embedder: SentenceTransformerEmbedder,
) -> None:
    prefix = torch_embedder.model_version.removesuffix("/torch")

    assert onnx_embedder.model_version == f"{prefix}/onnx"
    assert int8_embedder.model_version == f"{prefix}/onnx-int8"
    assert onnx_embedder.model_name == torch_embedder.model_name == "all-MiniLM-L6-v2"


def test_embedder_satisfies_the_interface_without_loading_anything(tmp_path: Path) -> None:
    embedder = OnnxEmbedder(backend="onnx", cache_dir=tmp_path)

    assert isinstance(embedder, Embedder)
    assert embedder.dimensions == 384
    assert embedder.embed([]) == []
    assert not (tmp_path / "onnx").exists()  # nothing exported until texts are embedded


def test_a_cached_export_is_used_without_exporting_again(
    onnx_embedder: OnnxEmbedder, cache_dir: Path, model: LocalModel
) -> None:
    exported = onnx_embedder.export()
    modified = exported.model_file.stat().st_mtime_ns
    calls: list[str] = []

    again = prepare(model, "onnx", cache_dir, exporter=copy_exporter(exported, calls))

    assert calls == []
    assert again.directory == exported.directory
    assert exported.model_file.stat().st_mtime_ns == modified


def test_a_changed_model_is_exported_again_under_its_new_version(
    onnx_embedder: OnnxEmbedder, cache_dir: Path, tmp_path: Path
) -> None:
    # The packaged model with one more file: another fingerprint, the same weights.
    changed = tmp_path / "all-MiniLM-L6-v2"
    shutil.copytree(packaged_model_path(), changed, copy_function=os.symlink)
    (changed / "NOTICE.txt").write_text("a new revision of the model\n")
    new_model = describe_model(changed, "all-MiniLM-L6-v2")
    calls: list[str] = []

    exported = prepare(
        new_model, "onnx", cache_dir, exporter=copy_exporter(onnx_embedder.export(), calls)
    )

    assert calls == [new_model.version("onnx")] != [onnx_embedder.model_version]
    assert exported.model_version == new_model.version("onnx") != onnx_embedder.model_version
    assert exported.directory != onnx_embedder.export().directory
    assert onnx_embedder.export().directory.is_dir()  # the old version's export stays


def test_an_export_that_does_not_reproduce_torch_is_refused_and_not_cached(
    onnx_embedder: OnnxEmbedder, model: LocalModel, tmp_path: Path
) -> None:
    good = onnx_embedder.export()

    def wrong_export(model_: LocalModel, destination: Path) -> None:
        perturbed(good.model_file, destination)

    with pytest.raises(ModelVerificationFailed, match=r"refusing to serve.*nothing was cached"):
        prepare(model, "onnx", tmp_path, exporter=wrong_export)

    cached = model_cache_dir(tmp_path, model)
    assert [p.name for p in cached.iterdir()] == [".lock"]  # no export, no temporary files


def test_an_export_that_fails_stops_with_the_cause_and_caches_nothing(
    model: LocalModel, tmp_path: Path
) -> None:
    def broken_export(model_: LocalModel, destination: Path) -> None:
        raise RuntimeError("exporter crashed")

    with pytest.raises(ModelExportFailed, match="RuntimeError: exporter crashed") as failed:
        prepare(model, "onnx", tmp_path, exporter=broken_export)

    assert isinstance(failed.value, EnrichmentError)  # stops a run, fails no record
    assert [p.name for p in model_cache_dir(tmp_path, model).iterdir()] == [".lock"]


def _tampered_copy(exported: ExportedModel, cache_dir: Path, model: LocalModel) -> Path:
    """A copy of the export whose graph computes different vectors while its files still
    match their recorded hashes: what a runtime that computes differently from the one that
    exported would serve."""
    target = export_dir(cache_dir, model, exported.backend)
    shutil.copytree(exported.directory, target)
    perturbed(exported.model_file, target / MODEL_FILE)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["sha256"][MODEL_FILE] = sha256(target / MODEL_FILE)
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    return target


def test_a_cached_export_that_gives_different_vectors_here_is_refused(
    onnx_embedder: OnnxEmbedder, model: LocalModel, tmp_path: Path
) -> None:
    target = _tampered_copy(onnx_embedder.export(), tmp_path, model)
    embedder = OnnxEmbedder(backend="onnx", cache_dir=tmp_path)

    with pytest.raises(ModelVerificationFailed, match="refusing to serve") as refused:
        embedder.embed(["hello"])

    assert refused.value.directory == target
    assert f"Delete {target}" in str(refused.value)


def test_a_damaged_cached_export_is_replaced_not_served(
    onnx_embedder: OnnxEmbedder, model: LocalModel, tmp_path: Path
) -> None:
    good = onnx_embedder.export()
    target = export_dir(tmp_path, model, "onnx")
    shutil.copytree(good.directory, target)
    with (target / MODEL_FILE).open("r+b") as handle:
        handle.truncate(1000)
    calls: list[str] = []

    assert read_export(target, model, "onnx") is None
    replaced = prepare(model, "onnx", tmp_path, exporter=copy_exporter(good, calls))

    assert len(calls) == 1
    assert sha256(replaced.model_file) == sha256(good.model_file)
    assert replaced.verification.passed


def test_leftovers_of_an_export_that_died_are_removed(
    onnx_embedder: OnnxEmbedder, model: LocalModel, tmp_path: Path
) -> None:
    leftover = model_cache_dir(tmp_path, model) / ".tmp-onnx-99999-deadbeef"
    leftover.mkdir(parents=True)
    (leftover / MODEL_FILE).write_bytes(b"half written")

    prepare(model, "onnx", tmp_path, exporter=copy_exporter(onnx_embedder.export()))

    assert not leftover.exists()
    assert export_dir(tmp_path, model, "onnx").is_dir()


def test_threads_starting_together_export_once(
    onnx_embedder: OnnxEmbedder, model: LocalModel, tmp_path: Path
) -> None:
    calls: list[str] = []
    exporter = copy_exporter(onnx_embedder.export(), calls)
    results: list[Path] = []
    start = threading.Barrier(3)

    def first_use() -> None:
        start.wait()
        results.append(prepare(model, "onnx", tmp_path, exporter=exporter).directory)

    threads = [threading.Thread(target=first_use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(calls) == 1
    assert results == [export_dir(tmp_path, model, "onnx")] * 3


def _export_in_another_process(source: str, cache_dir: str, log: str) -> str:
    """Runs in a spawned process: the first use of an export, as a worker process does it."""
    model = describe_model(packaged_model_path(), "all-MiniLM-L6-v2")

    def exporter(model_: LocalModel, destination: Path) -> None:
        with open(log, "a") as calls:
            calls.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # wide enough for the other process to find the lock taken
        shutil.copyfile(source, destination)

    return str(prepare(model, "onnx", Path(cache_dir), exporter=exporter).directory)


def test_processes_starting_together_export_once(
    onnx_embedder: OnnxEmbedder, model: LocalModel, tmp_path: Path
) -> None:
    log = tmp_path / "exports.log"
    cache = tmp_path / "models"
    source = str(onnx_embedder.export().model_file)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(_export_in_another_process, source, str(cache), str(log)) for _ in range(2)
        ]
        directories = {future.result(timeout=300) for future in futures}

    assert len(log.read_text().split()) == 1
    assert directories == {str(export_dir(cache, model, "onnx"))}


# --- models and devices the backends cannot serve ----------------------------------------------


def test_a_model_with_modules_the_backend_cannot_run_is_rejected_naming_the_setting(
    tmp_path: Path,
) -> None:
    shutil.copytree(packaged_model_path(), tmp_path / "model", copy_function=os.symlink)
    modules = tmp_path / "model" / "modules.json"
    data = json.loads(modules.read_text())
    modules.unlink()
    data.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    modules.write_text(json.dumps(data))

    with pytest.raises(InvalidInput, match=r"embedding\.backend") as rejected:
        OnnxEmbedder(tmp_path / "model", backend="onnx", cache_dir=tmp_path)

    assert "Dense" in str(rejected.value)


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(),
    reason="onnxruntime here has the CUDA provider",
)
def test_cuda_without_the_onnxruntime_cuda_provider_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"embedding\.device.*CUDA execution provider"):
        OnnxEmbedder(backend="onnx", device="cuda", cache_dir=tmp_path)


# --- configuration ----------------------------------------------------------------------------


def _source(embedding: dict[str, object] | None = None) -> dict[str, object]:
    stage: dict[str, object] = (
        {"embed": {"embedding": embedding}} if embedding else {"kind": "embed"}
    )
    return {
        "sources": [
            {
                "name": "notes",
                "table": "public.onnx_notes",
                "updated_at_column": None,
                "columns": ["body"],
                "entity": {"type": "note", "category": "Note"},
                "stages": ["context", stage],
            }
        ]
    }


def test_backend_defaults_to_onnx_and_an_unknown_one_is_rejected_with_its_key_path() -> None:
    assert LocalEmbedding().backend == "onnx"

    with pytest.raises(ConfigError, match=r"sources\[0\]\.stages\[1\]\.embedding\.backend"):
        parse_config(_source({"provider": "local", "backend": "tensorflow"}))


def test_build_embedder_serves_onnx_backends_from_the_data_directory(tmp_path: Path) -> None:
    embedder = build_embedder(LocalEmbedding(backend="onnx-int8"), data_dir=tmp_path)

    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.backend == "onnx-int8"
    assert embedder.cache_dir == tmp_path / "models"
    assert isinstance(build_embedder(LocalEmbedding(), data_dir=tmp_path), OnnxEmbedder)
    assert isinstance(build_embedder(LocalEmbedding(backend="torch")), SentenceTransformerEmbedder)


def test_onnx_backends_default_to_the_cpu_without_onnxruntime_cuda(tmp_path: Path) -> None:
    expected = "cuda" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"

    assert OnnxEmbedder(cache_dir=tmp_path).device == expected


def test_a_torch_backend_hashes_as_before_the_setting_existed_and_onnx_differs() -> None:
    torch_source = parse_config(_source({"provider": "local", "backend": "torch"})).sources[0]
    # What config_hash hashed before `backend` existed: the same dump without the key.
    dumped = torch_source.model_dump(mode="json", exclude=_HOW_IT_RUNS)
    del dumped["stages"][1]["embedding"]["backend"]
    before = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]
    default = config_hash(parse_config(_source()).sources[0])
    explicit_onnx = parse_config(_source({"provider": "local", "backend": "onnx"})).sources[0]

    assert config_hash(torch_source) == before
    assert default == config_hash(explicit_onnx) != before


# --- in the pipeline ------------------------------------------------------------------------------


@pytest.fixture
def notes(db: Engine) -> Iterator[Engine]:
    with db.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.onnx_notes; CREATE TABLE public.onnx_notes "
                "(id int PRIMARY KEY, workspace_id text, body text); "
                "INSERT INTO public.onnx_notes VALUES (1, 'acme', 'A fast HTTP client'), "
                "(2, 'acme', 'PostgreSQL database adapter'), (3, 'globex', 'Plot charts')"
            )
        )
    yield db
    with db.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS public.onnx_notes"))


def _runner(db: Engine, config_data: dict[str, object], data_dir: Path) -> Runner:
    config = parse_config(config_data)
    settings = Settings(retry_delays=(0.0,), retry_jitter=0.0, data_dir=data_dir)
    pipelines = build_pipelines(db, config, settings)
    sync(db, config, pipelines)
    return Runner(db, pipelines)


def _tables(db: Engine) -> dict[str, tuple[str, str, int]]:
    with db.connect() as connection:
        return {
            t.model_version.rsplit("/", 1)[1]: (t.name, t.state, vectors.row_count(connection, t))
            for t in vectors.tables(connection)
        }


def test_switching_backend_re_embeds_into_a_new_table_while_the_torch_one_serves(
    notes: Engine, onnx_embedder: OnnxEmbedder, data_dir: Path
) -> None:
    runner = _runner(notes, _source({"provider": "local", "backend": "torch"}), data_dir)
    send(notes, "notes", ["1", "2"], "CREATE", workspace="acme")
    send(notes, "notes", ["3"], "CREATE", workspace="globex")
    runner.drain()

    # The default backend (onnx): the configuration changed, every record is re-queued.
    _runner(notes, _source(), data_dir).drain()

    tables = _tables(notes)
    assert {backend: (state, rows) for backend, (_, state, rows) in tables.items()} == {
        "torch": ("active", 3),
        "onnx": ("building", 3),
    }
    with notes.connect() as connection:
        stored = {
            t.model_version.rsplit("/", 1)[1]: vectors.stored_vectors(
                connection, t, "notes", ["1", "2", "3"]
            )
            for t in vectors.tables(connection)
        }
    for place, (digest, torch_vector) in stored["torch"].items():
        onnx_digest, onnx_vector = stored["onnx"][place]
        assert onnx_digest == digest
        assert float(torch_vector @ onnx_vector) >= 1.0 - 1e-4


def test_a_refused_export_stops_the_run_and_fails_no_record(
    notes: Engine, onnx_embedder: OnnxEmbedder, model: LocalModel, tmp_path: Path
) -> None:
    _tampered_copy(onnx_embedder.export(), tmp_path / "models", model)
    runner = _runner(notes, _source({"provider": "local", "backend": "onnx"}), tmp_path)
    send(notes, "notes", ["1", "2"], "CREATE", workspace="acme")

    with pytest.raises(ModelVerificationFailed):
        runner.drain()

    with notes.connect() as connection:
        states = connection.execute(
            text(
                "SELECT stage, status, count(*) FROM enrichment.record_state "
                "WHERE source = 'notes' GROUP BY stage, status ORDER BY stage"
            )
        ).all()
    assert [tuple(row) for row in states] == [
        ("context", "COMPLETED", 2),
        ("embed", "IN_PROGRESS", 2),
    ]


# --- command line -----------------------------------------------------------------------------


def test_enrich_embedders_prepare_exports_and_reports_the_verification(
    onnx_embedder: OnnxEmbedder, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _source({"provider": "local", "backend": "onnx"})
    config["sources"].append(  # type: ignore[attr-defined]
        {  # type: ignore[index]
            **config["sources"][0],  # type: ignore[index]
            "name": "plain",
            "stages": [
                "context",
                {"embed": {"embedding": {"provider": "local", "backend": "torch"}}},
            ],
        }
    )
    path = tmp_path / "enrich.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    monkeypatch.setenv("ENRICH_CONFIG", str(path))
    monkeypatch.setenv("ENRICH_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["embedders", "prepare", "--json"])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    onnx_row, torch_row = json.loads(result.output)
    assert onnx_row["model_version"] == onnx_embedder.model_version
    assert onnx_row["directory"] == str(onnx_embedder.export().directory)
    assert 1.0 - onnx_row["here"]["min_cosine"] <= 1e-4
    assert torch_row == {
        "source": "plain",
        "backend": "torch",
        "model_version": onnx_embedder.model_version.replace("/onnx", "/torch"),
    }
