"""The async encoder service and its micro-batcher, with a fake model (no ONNX needed)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from encoder import EncoderClosedError, InvalidTextError
from encoder.service import Encoder
from tests.encoder.fakes import FakeModel


def run(coro):
    return asyncio.run(coro)


def test_answers_each_caller_with_its_own_vectors_in_order() -> None:
    model = FakeModel(delay=0.002)

    async def main() -> None:
        async with Encoder(model, max_wait_ms=2) as enc:
            calls = [[f"user {u} text {i}" for i in range(u % 5 + 1)] for u in range(40)]
            results = await asyncio.gather(*(enc.encode(c) for c in calls))
            for texts, res in zip(calls, results, strict=True):
                assert res.version == "fake-a"
                assert res.vectors.shape == (len(texts), model.dimension)
                for text, vec in zip(texts, res.vectors, strict=True):
                    np.testing.assert_array_equal(vec, model.expected(text))
            # Many callers shared few batches: that is the point of the batcher.
            assert len(model.calls) < len(calls)

    run(main())


def test_inference_and_tokenizing_never_run_on_the_event_loop_thread() -> None:
    model = FakeModel()

    async def main() -> None:
        async with Encoder(model) as enc:
            await enc.encode(["one", "two"])

    run(main())
    loop_thread = threading.current_thread().name
    assert model.threads and loop_thread not in model.threads
    assert model.tokenize_threads and loop_thread not in model.tokenize_threads


def test_flushes_on_token_budget_without_waiting_for_max_wait() -> None:
    model = FakeModel()

    async def main() -> float:
        # max wait of 10 s: only the budget (8 tokens) can make this finish quickly
        async with Encoder(model, max_wait_ms=10_000, max_batch_tokens=8) as enc:
            t0 = time.monotonic()
            await enc.encode(["abcdefgh", "ijklmnop"])
            return time.monotonic() - t0

    assert run(main()) < 2.0


def test_flushes_a_lone_request_after_max_wait() -> None:
    model = FakeModel()

    async def main() -> float:
        async with Encoder(model, max_wait_ms=50, max_batch_tokens=10_000) as enc:
            t0 = time.monotonic()
            await enc.encode(["short"])
            return time.monotonic() - t0

    elapsed = run(main())
    assert 0.045 <= elapsed < 1.0


def test_no_request_waits_past_max_wait_plus_one_batch() -> None:
    batch_s, wait_s = 0.03, 0.02
    model = FakeModel(delay=batch_s)

    async def main() -> list[float]:
        latencies: list[float] = []
        async with Encoder(model, max_wait_ms=wait_s * 1000) as enc:

            async def caller(i: int) -> None:
                await asyncio.sleep((i % 17) * 0.011)
                t0 = time.monotonic()
                await enc.encode([f"text {i}"])
                latencies.append(time.monotonic() - t0)

            await asyncio.gather(*(caller(i) for i in range(60)))
        return latencies

    latencies = run(main())
    # Its wait (max wait, plus at most the one batch already running), then its own batch.
    bound = wait_s + batch_s + batch_s + 0.05  # 50 ms for a loaded CI machine
    assert max(latencies) <= bound, (max(latencies), bound)


def test_back_pressure_bounds_rows_in_flight() -> None:
    model = FakeModel(delay=0.005)
    seen: list[int] = []

    async def main() -> None:
        async with Encoder(model, max_pending=4, max_wait_ms=1) as enc:
            stop = asyncio.Event()

            async def watch() -> None:
                while not stop.is_set():
                    seen.append(enc.batcher.pending)
                    await asyncio.sleep(0.001)

            watcher = asyncio.create_task(watch())
            results = await asyncio.gather(
                *(enc.encode([f"t{i}-{j}" for j in range(5)]) for i in range(10))
            )
            stop.set()
            await watcher
            assert all(r.vectors.shape == (5, model.dimension) for r in results)

    run(main())
    assert max(seen) <= 4
    assert max(model.calls) <= 4


def test_a_failing_batch_fails_its_callers_and_the_encoder_keeps_serving() -> None:
    model = FakeModel()

    async def main() -> None:
        async with Encoder(model, max_wait_ms=1) as enc:
            with pytest.raises(RuntimeError, match="simulated"):
                await enc.encode(["boom"])
            res = await enc.encode(["fine afterwards"])
            np.testing.assert_array_equal(res.vectors[0], model.expected("fine afterwards"))

    run(main())


def test_a_cancelled_caller_does_not_disturb_others() -> None:
    model = FakeModel(delay=0.02)

    async def main() -> None:
        async with Encoder(model, max_wait_ms=5) as enc:
            doomed = asyncio.create_task(enc.encode(["cancel me", "me too"]))
            others = [asyncio.create_task(enc.encode([f"keep {i}"])) for i in range(5)]
            await asyncio.sleep(0)
            doomed.cancel()
            results = await asyncio.gather(*others)
            assert [r.vectors.shape for r in results] == [(1, model.dimension)] * 5
            with pytest.raises(asyncio.CancelledError):
                await doomed

    run(main())


def test_close_fails_waiting_requests_and_refuses_new_ones() -> None:
    model = FakeModel(delay=0.05)

    async def main() -> None:
        enc = Encoder(model, max_wait_ms=1000, max_batch_tokens=10_000)
        waiting = asyncio.create_task(enc.encode(["waits for a flush"]))
        await asyncio.sleep(0.05)
        await enc.aclose()
        with pytest.raises(EncoderClosedError):
            await waiting
        with pytest.raises(EncoderClosedError):
            await enc.encode(["after close"])

    run(main())


def test_cache_serves_repeats_and_duplicates_are_encoded_once() -> None:
    model = FakeModel()

    async def main() -> None:
        async with Encoder(model) as enc:
            first = await enc.encode(["same", "same", "other"])
            assert sum(model.calls) == 2  # "same" once, "other" once
            assert first.cached == 0
            second = await enc.encode(["same", "other"])
            assert second.cached == 2
            assert sum(model.calls) == 2
            np.testing.assert_array_equal(second.vectors[0], first.vectors[0])
            assert enc.info()["cache_hits"] == 2

    run(main())


def test_hot_swap_under_load_answers_each_call_from_exactly_one_version() -> None:
    old, new = FakeModel("fake-old", delay=0.003), FakeModel("fake-new", delay=0.003)

    async def main() -> None:
        async with Encoder(old, max_wait_ms=2, cache_entries=0) as enc:

            async def caller(i: int):
                await asyncio.sleep(i * 0.001)
                texts = [f"c{i} t{j}" for j in range(3)]
                return texts, await enc.encode(texts)

            tasks = [asyncio.create_task(caller(i)) for i in range(120)]
            await asyncio.sleep(0.05)
            enc.swap(new)
            answered = await asyncio.gather(*tasks)
            after = await enc.encode(["after the swap"])

        versions = {res.version for _, res in answered}
        assert versions == {"fake-old", "fake-new"}
        for texts, res in answered:
            model = old if res.version == "fake-old" else new
            for text, vec in zip(texts, res.vectors, strict=True):
                np.testing.assert_array_equal(vec, model.expected(text))
        assert after.version == "fake-new"

    run(main())


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (None, "is None"),
        (42, "expected str, got int"),
        ("", "is empty"),
        ("  \n\t", "is empty"),
        (b"caf\xc3", "not valid UTF-8"),
        ("lone \ud800 surrogate", "not valid Unicode"),
    ],
)
def test_bad_input_raises_a_typed_error_for_that_caller_only(bad, reason) -> None:
    model = FakeModel(delay=0.01)

    async def main() -> None:
        async with Encoder(model, max_wait_ms=5) as enc:
            good = asyncio.create_task(enc.encode(["a good neighbour"]))
            with pytest.raises(InvalidTextError, match=reason) as info:
                await enc.encode(["fine", bad])
            assert info.value.index == 1
            res = await good
            np.testing.assert_array_equal(res.vectors[0], model.expected("a good neighbour"))

    run(main())


def test_a_single_string_instead_of_a_list_is_refused() -> None:
    async def main() -> None:
        async with Encoder(FakeModel()) as enc:
            with pytest.raises(InvalidTextError, match="sequence of texts"):
                await enc.encode("not a list")  # type: ignore[arg-type]

    run(main())


def test_ten_megabyte_text_is_truncated_and_counted() -> None:
    model = FakeModel(max_length=16)

    async def main() -> None:
        async with Encoder(model) as enc:
            res = await enc.encode(["x" * 10_000_000, b"valid bytes \xc3\xa9"])
            assert res.vectors.shape == (2, model.dimension)
            assert res.truncated == 1
            assert enc.info()["truncated"] == 1

    run(main())


def test_a_call_larger_than_a_batch_is_split_and_answered_in_order() -> None:
    model = FakeModel()

    async def main() -> None:
        async with Encoder(model, max_batch_rows=64, max_wait_ms=1) as enc:
            texts = [f"text {i}" for i in range(300)] + ["text 7"]  # one repeat
            res = await enc.encode(texts)
            for text, vec in zip(texts, res.vectors, strict=True):
                np.testing.assert_array_equal(vec, model.expected(text))
            again = await enc.encode(["new one", "text 3", "new one"])  # a hit and a repeat
            assert again.cached == 1
            np.testing.assert_array_equal(again.vectors[0], again.vectors[2])
            np.testing.assert_array_equal(again.vectors[1], model.expected("text 3"))

    run(main())
    assert max(model.calls) <= 64 and sum(model.calls) == 301


def test_tokenize_threads_tokenize_several_calls_at_once() -> None:
    both = threading.Barrier(2, timeout=10)  # passes only when two calls tokenize together

    class Meeting(FakeModel):
        def tokenize(self, texts):
            both.wait()
            return super().tokenize(texts)

    model = Meeting()

    async def main() -> None:
        async with Encoder(model, tokenize_threads=2) as enc:
            a, b = await asyncio.gather(enc.encode(["one"]), enc.encode(["two"]))
            plain = FakeModel()  # the same vectors, without the barrier
            np.testing.assert_array_equal(a.vectors[0], plain.expected("one"))
            np.testing.assert_array_equal(b.vectors[0], plain.expected("two"))

    run(main())
    assert len(model.tokenize_threads) == 2
