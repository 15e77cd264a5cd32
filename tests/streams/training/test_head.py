"""The learned interest head: its fold is the stream's, it learns what ids carry, it starts
at zero-shot, cold items get the text part only, and a version carries it verifiably."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from encoder.errors import ModelIntegrityError
from encoder.manifest import HEAD_FILE, read_manifest, verify_files
from streams.errors import StreamError
from streams.evaluation.data import Interaction
from streams.evaluation.protocol import Split, five_core, leave_one_out
from streams.evaluation.rows import Interest, interest_vectors
from streams.head import Head, load_head
from streams.settings import Settings
from streams.training.compare import cold_items, ranks_of
from streams.training.head import HeadConfig, train_head, user_vectors
from streams.training.versions import write_head_version

T0 = 1_500_000_000.0


def chain_split(users: int = 60, items: int = 30, length: int = 14, seed: int = 0) -> Split:
    """Each user walks item k -> k+1 (mod items) from a random start: the next item is
    plain from ids, invisible to random text vectors."""
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        start = rng.randrange(items)
        for k in range(length):
            rows.append(Interaction(str(u), str((start + k) % items), T0 + 3600 * k, None))
    return leave_one_out(five_core(rows), {str(i): f"item {i}" for i in range(items)})


def unit_vectors(n: int, d: int, seed: int = 1) -> np.ndarray:
    e = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def random_head(items: list[str], rng: np.random.Generator, half_life: float | None) -> Head:
    n, d, encoder = len(items), 4, 8
    return Head(
        list(items),
        rng.normal(size=(d, encoder)),
        rng.normal(size=(d, encoder)),
        rng.normal(size=(n, d)),
        rng.normal(size=(n, d)),
        rng.normal(size=n),
        half_life,
    )


def recall10(split: Split, users: np.ndarray, items: np.ndarray) -> float:
    return float((ranks_of(split, "test", users, items) < 10).mean())


def test_the_identity_head_ranks_exactly_as_the_zero_shot_vector() -> None:
    split = chain_split()
    e = unit_vectors(len(split.items), 8)
    zero = np.zeros((len(split.items), 8), dtype=np.float32)
    head = Head(split.items, np.eye(8), np.eye(8), zero, zero, np.zeros(len(zero)), 86_400.0)
    users = user_vectors(head, split, "test", e)
    plain = interest_vectors(split, "test", e, Interest(86_400.0, "uniform"), Settings())
    np.testing.assert_allclose(users[:, :-1], plain, atol=1e-9)
    np.testing.assert_array_equal(
        ranks_of(split, "test", users, head.item_matrix(e)),
        ranks_of(split, "test", plain, e.astype(np.float64)),
    )


def test_the_users_sum_is_order_independent_and_linear_in_its_events() -> None:
    split = chain_split(users=20, items=8)
    e = unit_vectors(len(split.items), 8)
    rng = np.random.default_rng(2)
    head = random_head(split.items, rng, 7_200.0)
    users = user_vectors(head, split, "test", e)
    x = head.history_vectors(e)
    for u in range(len(split.users)):
        k = split.history_length(u, "test")
        order = rng.permutation(k)  # events arriving in any order
        seq, t = split.sequences[u][:k][order], split.times[u][:k][order]
        s = sum(2 ** ((ti - t.max()) / 7_200.0) * x[j] for j, ti in zip(seq, t, strict=True))
        np.testing.assert_allclose(users[u, :-1], s / np.linalg.norm(s), atol=1e-9)


def test_training_learns_what_only_ids_carry_and_keeps_the_best_epoch() -> None:
    split = chain_split()
    e = unit_vectors(len(split.items), 16)
    config = HeadConfig(dim=16, epochs=8, batch_size=64, learning_rate=0.03, seed=0)
    head, record = train_head(split, e, config, progress=False)
    zero_shot = record["epochs"][0]["validation"]["recall@10"]
    best = record["epochs"][record["best_epoch"]]["validation"]["recall@10"]
    assert record["best_epoch"] > 0 and best > zero_shot + 0.3
    assert recall10(split, user_vectors(head, split, "test", e), head.item_matrix(e)) > 0.8


def late_item_split(users: int = 60, items: int = 30, length: int = 14, seed: int = 0) -> Split:
    """The chain of :func:`chain_split`, and one late item, Z: the validation target of the
    first half of the users and the test target of the second half. Z is no training
    target until the validation targets are."""
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        start = rng.randrange(items)
        walk = [str((start + k) % items) for k in range(length - 1)]
        walk.insert(length - 2 if u < users // 2 else length - 1, "Z")
        rows += [Interaction(str(u), j, T0 + 3600 * k, None) for k, j in enumerate(walk)]
    texts = {str(i): f"item {i}" for i in range(items)} | {"Z": "item Z"}
    return leave_one_out(five_core(rows), texts)


def test_the_refit_learns_from_the_validation_targets_what_validation_chose() -> None:
    """After the epochs are chosen on validation, the refit trains that many again with
    the validation targets among the targets: a late item that only validation targets
    show is learned, and ranks near the top for the users whose test target it is."""
    split = late_item_split()
    z = split.items.index("Z")
    later = [u for u in range(len(split.users)) if split.target(u, "test") == z]
    assert len(later) == 30
    e = unit_vectors(len(split.items), 16)
    # the linear readout: with the default MLP, the head without the refit already ranks
    # the never-trained Z among the first three for 20% of those users on this toy split
    config = HeadConfig(
        dim=16, epochs=8, batch_size=64, learning_rate=0.03, readout_hidden=0, seed=0
    )
    found = {}
    for refit in (False, True):
        head, record = train_head(
            split, e, dataclasses.replace(config, refit=refit), progress=False
        )
        ranks = ranks_of(split, "test", user_vectors(head, split, "test", e), head.item_matrix(e))
        found[refit] = float(np.mean(ranks[later] < 3))  # Z among the first three
        if refit:
            assert record["refit"]["epochs"] == record["best_epoch"] > 0
            assert record["refit"]["prefixes"] == record["prefixes"] + len(split.users)
        else:
            assert "refit" not in record
    assert found[False] <= 0.1 and found[True] >= 0.6, found


def test_cold_items_get_no_per_item_parts_and_are_never_targets() -> None:
    split = chain_split()
    e = unit_vectors(len(split.items), 16)
    cold = cold_items(split, 0.2)
    assert len(cold) == round(0.2 * len(split.items))
    head, record = train_head(
        split, e, HeadConfig(dim=16, epochs=2, batch_size=64), cold=cold, progress=False
    )
    assert not head.h[cold].any() and not head.v[cold].any() and not head.bias[cold].any()
    warm = np.setdiff1d(np.arange(len(split.items)), cold)
    assert head.v[warm].any()
    assert record["cold_items"] == len(cold)


def test_cold_items_are_no_candidate_of_the_training_softmax() -> None:
    """Held-out items did not exist at training time: what they look like must not enter
    the loss, or training learns to push their text part away from every user."""
    import torch

    from streams.training.head import Batch, softmax_loss

    n, d, cold = 12, 8, [9, 10, 11]
    e = torch.from_numpy(unit_vectors(n, d))
    params = (torch.eye(d), torch.eye(d), torch.zeros(n, d), torch.zeros(n, d), torch.zeros(n))
    warm = torch.ones(n, 1)
    warm[cold] = 0.0
    batch = Batch.of([np.array([0, 1, 2])], [np.ones((1, 3))], [3], mask_history=False)
    loss = softmax_loss((e, *params, None), warm, batch, id_dropout=0.0)
    moved = e.clone()
    moved[cold] = e[3]  # the held-out items now look exactly like the target
    again = softmax_loss((moved, *params, None), warm, batch, id_dropout=0.0)
    assert torch.isclose(loss, again)


def test_an_examples_own_history_is_no_candidate_of_its_softmax() -> None:
    """The protocol never ranks a user's history; training leaves it out too, so the loss
    does not push down the items the sums point at."""
    import torch

    from streams.training.head import Batch, softmax_loss

    n, d = 12, 8
    e = torch.from_numpy(unit_vectors(n, d))
    params = (torch.eye(d), torch.eye(d), torch.zeros(n, d), torch.zeros(n, d), torch.zeros(n))
    warm = torch.ones(n, 1)
    history, coefs = np.array([0, 1, 2]), np.ones((1, 3))
    masked = Batch.of([history], [coefs], [3], mask_history=True)
    assert sorted(masked.seen[1].tolist()) == [0, 1, 2]
    # the user's sum points at its history: left out, the target's share of the softmax
    # is what it would be among the other items alone
    loss = softmax_loss((e, *params, None), warm, masked, id_dropout=0.0)
    logits = (e[[0, 1, 2]].sum(0) / e[[0, 1, 2]].sum(0).norm()) @ e.T
    assert torch.isclose(loss, torch.logsumexp(logits[3:], 0) - logits[3], atol=1e-5)
    plain = Batch.of([history], [coefs], [3], mask_history=False)
    assert loss < softmax_loss((e, *params, None), warm, plain, id_dropout=0.0)
    # a target that is also in the history stays a candidate (it is what is predicted)
    again = Batch.of([np.array([0, 3, 2])], [coefs], [3], mask_history=True)
    assert 3 not in again.seen[1].tolist()
    assert torch.isfinite(softmax_loss((e, *params, None), warm, again, id_dropout=0.0))


def test_a_head_with_extra_sums_folds_each_and_reads_them_out(tmp_path: Path) -> None:
    """``q = Σ_k W_k normalize(s_k)``, one sum per half-life (inf: no decay), in the clock of
    the head; it survives its file, and a single-sum head's file has no readout."""
    rng = np.random.default_rng(3)
    split = chain_split(users=20, items=8)
    base = random_head(split.items, rng, None)
    W = rng.normal(size=(3, base.dim, base.dim))
    head = dataclasses.replace(
        base, half_life_events=10.0, extra_half_lives=(1.0, math.inf), readout=W
    )
    e = unit_vectors(len(split.items), 8)
    x = head.history_vectors(e)
    items, times = np.array([0, 3, 5, 1]), np.arange(4.0)
    got = head.fold(x, items, times)
    want = np.zeros(head.dim)
    for k, h in enumerate((10.0, 1.0, math.inf)):
        s = (np.exp2(-np.arange(4)[::-1] / h)[:, None] * x[items]).sum(0)
        want += W[k] @ (s / np.linalg.norm(s))
    np.testing.assert_allclose(got, np.append(want, 1.0), atol=1e-9)
    head.save(tmp_path / HEAD_FILE)
    back = Head.load(tmp_path / HEAD_FILE)
    assert back.extra_half_lives == (1.0, math.inf)
    np.testing.assert_array_equal(back.readout, W)
    base.save(tmp_path / "single.npz")
    with np.load(tmp_path / "single.npz") as z:
        assert "readout" not in z and "extra_half_lives" not in z
    with pytest.raises(StreamError, match="readout has shape"):
        dataclasses.replace(head, readout=W[:2])


def test_a_heads_mlp_adds_a_relu_layer_over_the_directions(tmp_path: Path) -> None:
    """``q = Σ_k W_k d_k + U_2 relu(U_1 [d_0; d_1] + c)``; it survives the head's file, and
    a head without one writes none."""
    rng = np.random.default_rng(5)
    split = chain_split(users=20, items=8)
    base = random_head(split.items, rng, None)
    W = rng.normal(size=(2, base.dim, base.dim))
    mlp = (rng.normal(size=(6, 2 * base.dim)), rng.normal(size=6), rng.normal(size=(base.dim, 6)))
    head = dataclasses.replace(
        base, half_life_events=10.0, extra_half_lives=(math.inf,), readout=W, mlp=mlp
    )
    d = [v / np.linalg.norm(v) for v in rng.normal(size=(2, base.dim))]
    hidden = mlp[0] @ np.concatenate(d) + mlp[1]
    want = W[0] @ d[0] + W[1] @ d[1] + mlp[2] @ np.where(hidden > 0, hidden, 0.0)
    np.testing.assert_allclose(head.query(d), want, atol=1e-12)
    both = head.query([np.stack([d[0], d[1]]), np.stack([d[1], d[0]])])  # (n, dim) rows
    np.testing.assert_allclose(both[0], want, atol=1e-12)
    head.save(tmp_path / HEAD_FILE)
    back = Head.load(tmp_path / HEAD_FILE)
    assert back.mlp is not None
    for got, saved in zip(back.mlp, mlp, strict=True):
        np.testing.assert_array_equal(got, saved)
    dataclasses.replace(head, mlp=None).save(tmp_path / "linear.npz")
    with np.load(tmp_path / "linear.npz") as z:
        assert "mlp_in" not in z
    with pytest.raises(StreamError, match="MLP has shapes"):
        dataclasses.replace(head, mlp=(mlp[0][:, :-1], mlp[1], mlp[2]))


def test_an_mlp_readout_starts_at_the_linear_one_and_learns() -> None:
    """Its output layer starts at zero, so the first loss is the linear readout's; trained,
    the head carries the layer, moved, and a feedback round warm-starts from it."""
    from streams.training.head import Batch, finetune_head, softmax_loss

    split = chain_split(users=40, items=30)
    e = unit_vectors(len(split.items), 8)
    config = HeadConfig(
        dim=8,
        half_life_events=10.0,
        extra_half_lives=(1.0,),
        epochs=3,
        patience=3,
        readout_hidden=16,
        weight_average=0.0,
        id_dropout=0.0,
    )
    head, _ = train_head(split, e, config, progress=False)
    assert head.mlp is not None and head.mlp[0].shape == (16, 16)
    assert np.abs(head.mlp[2]).max() > 0  # the output layer moved from zero
    import torch

    tensors = [torch.from_numpy(a.astype(np.float32)) for a in (e, head.A, head.B, head.h)]
    tensors += [torch.from_numpy(a.astype(np.float32)) for a in (head.v, head.bias)]
    W = torch.from_numpy(head.readout.astype(np.float32))
    zero_out = (torch.from_numpy(head.mlp[0]), torch.from_numpy(head.mlp[1]), torch.zeros(8, 16))
    histories = [np.array([0, 1, 2]), np.array([3, 4])]
    coefs = [np.ones((2, 3)), np.ones((2, 2))]
    batch = Batch.of(histories, coefs, [3, 5], True)
    warm = torch.ones(len(split.items), 1)
    linear = softmax_loss((*tensors, W), warm, batch, 0.0)
    assert float(softmax_loss((*tensors, W, zero_out), warm, batch, 0.0)) == float(linear)
    examples = [
        (h, np.arange(float(len(h))), np.ones(len(h)), t)
        for h, t in ((histories[0], 3), (histories[1], 5))
    ]
    tuned, _ = finetune_head(head, e, list(split.items), examples, progress=False)
    assert tuned.mlp is not None and not np.array_equal(tuned.mlp[2], head.mlp[2])


def test_cold_items_are_the_newest_by_first_appearance() -> None:
    rows = [Interaction(u, i, T0 + t, None) for u in "ab" for t, i in enumerate("xyzw")]
    rows += [Interaction("c", i, T0 + t, None) for i, t in (("x", 0), ("q", 99), ("y", 100))]
    split = leave_one_out(rows, dict.fromkeys("xyzwq", "t"))
    assert [split.items[i] for i in cold_items(split, 0.4)] == ["q", "w"]


def test_a_head_survives_its_file(tmp_path: Path) -> None:
    split = chain_split(users=20, items=8)
    head = random_head(split.items, np.random.default_rng(0), None)
    head.save(tmp_path / HEAD_FILE)
    back = Head.load(tmp_path / HEAD_FILE)
    assert back.item_ids == head.item_ids and back.half_life_s is None
    for name in ("A", "B", "h", "v", "bias"):
        np.testing.assert_array_equal(getattr(back, name), getattr(head, name))


def test_a_head_version_is_content_addressed_and_verified(tiny_root: Path) -> None:
    from encoder.registry import ModelRegistry
    from streams.errors import StreamError
    from streams.head import load_head

    parent = ModelRegistry(tiny_root).current()
    assert parent is not None
    split = chain_split(users=20, items=8)
    n, d = len(split.items), read_manifest(tiny_root / parent).dimension
    zero = np.zeros((n, 4))
    head = Head(split.items, np.eye(4, d), np.eye(4, d), zero, zero, np.zeros(n), None)
    version, created = write_head_version(tiny_root, parent, head, {"half_life_s": None})
    assert created and version != parent
    again, created_again = write_head_version(tiny_root, parent, head, {"half_life_s": None})
    assert again == version and not created_again  # the same head: the same version
    bias = np.ones(n)
    other, _ = write_head_version(
        tiny_root, parent, Head(split.items, head.A, head.B, zero, zero, bias, None), {}
    )
    assert other not in (version, parent)
    manifest = read_manifest(tiny_root / version)
    assert manifest.parent == parent and manifest.head["dimension"] == 4
    verify_files(tiny_root / version, manifest)
    (tiny_root / version / HEAD_FILE).write_bytes(b"tampered")
    with pytest.raises(ModelIntegrityError):
        verify_files(tiny_root / version, manifest)
    assert ModelRegistry(tiny_root).current() == parent  # never made current by itself
    assert load_head(tiny_root / parent) is None
    loaded = load_head(tiny_root / other)
    assert loaded is not None and loaded.bias.tolist() == bias.tolist()
    by_events = Head(split.items, head.A, head.B, zero, zero, bias, None, half_life_events=10)
    events, _ = write_head_version(tiny_root, parent, by_events, {})
    assert load_head(tiny_root / events).half_life_events == 10  # the stream folds it
    both = dataclasses.replace(by_events, half_life_s=86_400.0)
    two_clocks, _ = write_head_version(tiny_root, parent, both, {})
    with pytest.raises(StreamError, match="both by time and by events"):
        load_head(tiny_root / two_clocks)


def test_sasrec_trains_and_ranks_every_user() -> None:
    from streams.training.sasrec import SasrecConfig, rank, train_sasrec

    split = chain_split()
    config = SasrecConfig(max_length=16, epochs=40, eval_every=10, patience=2, batch_size=32)
    model, record = train_sasrec(split, config, progress=False)
    scores = model.scores(split, "test")
    assert scores.shape == (len(split.users), len(split.items))
    assert record["best_epoch"] in {c["epoch"] for c in record["curve"]}
    assert rank(split, "test", scores)["recall@10"] > 0.5  # the chain is easy for ids


def test_sasrec_refits_through_the_validation_targets_as_the_head_does() -> None:
    from streams.training.sasrec import SasrecConfig, train_sasrec

    split = late_item_split()
    z = split.items.index("Z")
    later = [u for u in range(len(split.users)) if split.target(u, "test") == z]
    config = SasrecConfig(max_length=16, epochs=40, eval_every=10, patience=2, batch_size=32)
    rank_of_z = {}
    for refit in (False, True):
        model, record = train_sasrec(
            split, dataclasses.replace(config, refit=refit), progress=False
        )
        scores = model.scores(split, "test")[later]
        rank_of_z[refit] = float(np.mean((scores > scores[:, [z]]).sum(axis=1)))
        assert ("refit" in record) == refit
    assert rank_of_z[True] + 3 < rank_of_z[False], rank_of_z


def test_train_compares_the_rows_and_writes_the_head(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import orjson

    from streams.cli import main

    split = chain_split(users=20, items=8)
    events = ["user_id,item_id,ts"]
    for u, seq in enumerate(split.sequences):
        events += [f"{u},{split.items[j]},{t}" for j, t in zip(seq, split.times[u], strict=True)]
    (tmp_path / "events.csv").write_text("\n".join(events) + "\n")
    items = ["item_id,text"] + [f"{i},a film called {i}" for i in split.items]
    (tmp_path / "items.csv").write_text("\n".join(items) + "\n")
    args = ["train", "--events", str(tmp_path / "events.csv"), "--items"]
    args += [str(tmp_path / "items.csv"), "--model", str(tiny_root), "--seeds", "2"]
    args += ["--epochs", "2", "--sasrec-epochs", "5", "--cold-share", "0.25", "--dim", "8"]
    assert main([*args, "--write", "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning: 8 items, not more than the 10 ranked" in captured.err  # a tiny catalogue
    report = orjson.loads(captured.out)
    names = [r["name"] for r in report["rows"]]
    assert names == ["popularity", "zero-shot", "learned head", "learned head, text part", "SASRec"]
    assert all(r["seeds"] == 2 for r in report["rows"][2:])
    assert [r["name"] for r in report["cold_start"]["rows"]] == [
        "learned head (text fallback)",
        "SASRec",
        "popularity",
    ]
    written = report["written"]
    assert read_manifest(tiny_root / written["version"]).parent == written["parent"]
    served = load_head(tiny_root / written["version"])  # the default: five sums, read out
    assert served is not None and served.half_life_events == 10.0
    assert served.extra_half_lives == (1.0, 3.0, 30.0, math.inf)
    assert served.readout is not None and served.readout.shape == (5, 8, 8)
    assert read_manifest(tiny_root / written["version"]).head["refit"] is True
    # eval on that version says which of its rows the refit trained on
    evaluated = [*args[:5], "--model", str(tiny_root / written["version"]), "--json"]
    assert main(["eval", *evaluated[1:]]) == 0
    rows = orjson.loads(capsys.readouterr().out)["rows"]
    details = {r["split"]: r["detail"] for r in rows if r["name"] == "serving"}
    assert details == {
        "validation": "learned head, d=8; refit: trained on these targets",
        "test": "learned head, d=8",
    }
    from streams.evaluation.report import main as publish

    (tmp_path / "train.json").write_bytes(orjson.dumps(report))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- train:begin -->\nPLACEHOLDER\n<!-- train:end -->\n")
    assert publish(["--readme", str(readme), "--train", str(tmp_path / "train.json")]) == 0
    text = readme.read_text()
    assert "| learned head (train extra) |" in text and "PLACEHOLDER" not in text
    assert "**Where we stand:** the learned head reaches" in text
    assert "Training on this machine: the head" in text

    # Training again from the head version (what CURRENT is after --set-current) trains
    # from its encoder version, with a word, instead of refusing.
    again = [*args[:5], "--model", str(tiny_root / written["version"]), "--seeds", "1"]
    again += ["--epochs", "1", "--no-sasrec", "--cold-share", "0", "--dim", "8", "--json"]
    assert main(again) == 0
    captured = capsys.readouterr()
    assert "training from its encoder version" in captured.err
    assert orjson.loads(captured.out)["model_version"] == written["parent"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--half-life", "soon"], "--half-life must be seconds > 0 or 'none'"),
        (["--half-life-events", "0"], "--half-life-events must be > 0"),
        (["--id-dropout", "1"], "--id-dropout must be in [0, 1)"),
        (["--patience", "0"], "--patience must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--learning-rate", "0"], "--learning-rate must be a positive number"),
        (["--readout-hidden", "-1"], "--readout-hidden must be 0 or more"),
        (["--dim", "100000"], "exceeds the encoder's"),
        (["--extra-half-lives", "abc"], "--extra-half-lives must be half-lives > 0"),
        (["--extra-half-lives", "1,0"], "--extra-half-lives must be half-lives > 0"),
        (["--extra-half-lives", "nan"], "--extra-half-lives must be half-lives > 0"),
    ],
)
def test_train_refuses_bad_options_with_one_line(
    extra: list[str], message: str, tiny_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli import main

    args = ["train", "--dataset", "movielens", "--path", "../shared/data/movielens-latest-small"]
    assert main([*args, "--model", str(tiny_root), *extra]) == 2
    assert message in capsys.readouterr().err


def test_the_best_seed_is_chosen_by_recall_then_ndcg() -> None:
    from streams.training.compare import best_index

    # np.argmax of these pairs indexes the flattened array: 2 here, and up to 5 for 3 seeds.
    assert best_index([(0.10, 0.05), (0.12, 0.06), (0.11, 0.07)]) == 1
    assert best_index([(0.12, 0.05), (0.12, 0.06), (0.11, 0.9)]) == 1


def test_the_weight_average_follows_the_steps_and_rate_0_is_the_weights() -> None:
    import torch

    from streams.training.head import WeightAverage

    p = torch.nn.Parameter(torch.zeros(2))
    average = WeightAverage([p], 0.5)
    with torch.no_grad():
        for value in (1.0, 2.0, 4.0):
            p.fill_(value)
            average.update()
    # rates min(0.5, (1 + n) / (10 + n)): 1/10, 2/11, 3/12
    first = 0.9 * 1.0
    second = 2 / 11 * first + 9 / 11 * 2.0
    third = 0.25 * second + 0.75 * 4.0
    np.testing.assert_allclose(average.weights()[0].numpy(), [third] * 2, rtol=1e-6)
    for _ in range(100):
        average.update()  # the rate is capped at 0.5: the average reaches the weights
    np.testing.assert_allclose(average.weights()[0].numpy(), [4.0] * 2, rtol=1e-6)
    assert not average.weights()[0].requires_grad
    plain = WeightAverage([p], 0.0)
    plain.update()
    np.testing.assert_array_equal(plain.weights()[0].numpy(), [4.0, 4.0])
