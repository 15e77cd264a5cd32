"""The runtime on real exported model versions (exported once per session by conftest)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest

from encoder import Encoder, ModelIntegrityError, ModelLoadError, load_model
from encoder.model import plan_runs
from encoder.registry import ModelRegistry, resolve_model_dir
from encoder.session import cuda_device_count


def test_vectors_do_not_depend_on_batch_company(default_model_dir: Path) -> None:
    model = load_model(default_model_dir, provider="cpu")
    texts = ["Toy Story (1995)", "a " * 300, "千と千尋の神隠し 🎬", "Heat (1995) Action|Crime"]
    rows, truncated = model.tokenize(texts)
    assert truncated == 1
    together = model.embed(rows)
    alone = np.stack([model.embed([r])[0] for r in rows])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_encoder_matches_sentence_transformers(default_model_dir: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    from export.source import default_model_dir as source_dir

    texts = ["Amélie (2001) Comedy|Romance", "short", "a much longer review " * 20]
    reference = st.SentenceTransformer(str(source_dir()), device="cpu").encode(texts)

    async def main() -> np.ndarray:
        async with Encoder(load_model(default_model_dir, provider="cpu")) as enc:
            return (await enc.encode(texts)).vectors

    np.testing.assert_allclose(asyncio.run(main()), reference, atol=1e-4)


def test_cpu_load_prints_nothing(
    default_model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    model = load_model(default_model_dir)  # provider auto
    if cuda_device_count() == 0:
        assert model.provider == "cpu"
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_corrupted_model_file_is_refused(default_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(default_model_dir, copy)
    with (copy / "model.onnx").open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_model(copy)


def test_unloadable_graph_is_a_model_load_error(default_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(default_model_dir, copy)
    (copy / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(copy, verify=False)


def test_cuda_asked_for_without_a_gpu_is_a_clear_error(default_model_dir: Path) -> None:
    if cuda_device_count() > 0:
        pytest.skip("a GPU is present")
    with pytest.raises(ModelLoadError, match="cuda"):
        load_model(default_model_dir, provider="cuda")


def test_a_cuda_provider_that_cannot_start_is_not_taken_for_cuda(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device is seen but the CUDA libraries are missing: ONNX Runtime falls back to the
    CPU quietly, so asking for cuda must fail and auto must say cpu."""
    import onnxruntime as ort

    import encoder.session

    if cuda_device_count() > 0 or "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu on a machine without CUDA libraries")
    monkeypatch.setattr(encoder.session, "cuda_device_count", lambda: 1)
    with pytest.raises(ModelLoadError, match="could not start its CUDA provider"):
        load_model(tiny_model_dir, provider="cuda")
    assert load_model(tiny_model_dir, provider="auto").provider == "cpu"


@pytest.mark.gpu
def test_cuda_provider_runs_the_model(default_model_dir: Path) -> None:
    if cuda_device_count() == 0:
        pytest.skip("no CUDA device")
    gpu = load_model(default_model_dir, provider="cuda")
    cpu = load_model(default_model_dir, provider="cpu")
    rows, _ = cpu.tokenize(["a test on the GPU", "another"])
    np.testing.assert_allclose(gpu.embed(rows), cpu.embed(rows), atol=1e-3)


def test_registry_resolves_the_current_version(default_model_dir: Path, tmp_path: Path) -> None:
    root = default_model_dir.parent
    assert default_model_dir.name in ModelRegistry(root).versions()
    assert resolve_model_dir(default_model_dir) == default_model_dir
    with pytest.raises(ModelLoadError, match="export"):
        resolve_model_dir(tmp_path / "nothing-here")
    empty = tmp_path / "empty-root"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="CURRENT"):
        resolve_model_dir(empty)


def test_hot_swap_between_real_versions(default_model_dir: Path, tiny_model_dir: Path) -> None:
    big, tiny = load_model(default_model_dir), load_model(tiny_model_dir)

    async def main() -> None:
        async with Encoder(big) as enc:
            tasks = [asyncio.create_task(enc.encode([f"text {i}", "shared"])) for i in range(30)]
            await asyncio.sleep(0)
            enc.swap(tiny)
            later = [asyncio.create_task(enc.encode([f"later {i}"])) for i in range(10)]
            for res in await asyncio.gather(*tasks, *later):
                want = {big.version: big.dimension, tiny.version: tiny.dimension}[res.version]
                assert res.vectors.shape[1] == want
            assert (await later[0]).version == tiny.version

    asyncio.run(main())


@pytest.mark.parametrize(
    ("lengths", "rows", "tokens"),
    [([5] * 10, 4, 10_000), ([3, 40, 4, 41, 5], 10, 10_000), ([10, 10, 10, 10], 10, 25)],
)
def test_plan_runs_covers_every_row_once_within_limits(lengths, rows, tokens) -> None:
    runs = plan_runs(lengths, tokens, rows)
    assert sorted(i for run in runs for i in run) == list(range(len(lengths)))
    for run in runs:
        assert len(run) <= rows
        assert len(run) == 1 or len(run) * max(lengths[i] for i in run) <= tokens


def test_plan_runs_keeps_short_and_long_apart() -> None:
    runs = plan_runs([3, 200, 4, 210, 5], 10_000, 64)
    assert [sorted(r) for r in runs] == [[0, 2, 4], [1, 3]]


def test_pad_right_pads_rows_of_mixed_lengths() -> None:
    from encoder.tokenize import pad

    rows = [np.array([5, 6, 7]), np.array([8]), np.array([1, 2])]
    ids, mask = pad(rows, pad_id=0)
    np.testing.assert_array_equal(ids, [[5, 6, 7], [8, 0, 0], [1, 2, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    assert ids.dtype == mask.dtype == np.int64
    same_ids, same_mask = pad([np.array([1, 2]), np.array([3, 4])], pad_id=0)
    np.testing.assert_array_equal(same_ids, [[1, 2], [3, 4]])
    assert same_mask.all()


def test_bucketed_runs_give_the_same_vectors(tiny_model_dir: Path) -> None:
    """CUDA runs are padded to a few shapes; the padding must not change a row's vector."""
    from encoder.model import WIDTH_STEP, bucket
    from encoder.tokenize import pad

    model = load_model(tiny_model_dir, provider="cpu")
    rows, _ = model.tokenize(["a", "a longer text with several words", "mid length one"])
    ids, mask = pad(rows, model.tokenizer.pad_id)
    big_ids, big_mask = bucket(ids, mask, model.tokenizer.pad_id, model.max_length)
    assert big_ids.shape == (4, WIDTH_STEP) and big_mask[3].sum() == 1
    plain = model.session.run(ids, mask)
    padded = model.session.run(big_ids, big_mask)
    np.testing.assert_allclose(padded[:3], plain, atol=1e-5)
    assert np.isfinite(padded).all()


def test_idle_cpu_threads_sleep_instead_of_spinning(tiny_model_dir: Path) -> None:
    # A spinning intra-op thread held a core through every gap between micro-batches.
    options = load_model(tiny_model_dir, provider="cpu").session._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
