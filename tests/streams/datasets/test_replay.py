from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.datasets.replay import feedback_of, movielens_events, movielens_items, replay_movielens
from streams.errors import StreamError
from streams.kafka.topics import ensure_topics
from streams.settings import Settings


@pytest.fixture
def tiny_movielens(tmp_path: Path) -> Path:
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Comedy\n2,"Heat, The (1995)",'
        "(no genres listed)\n"
    )
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,2,3.0,200\n1,1,4.5,100\n2,1,4.0,100\n"
    )
    (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,funny,150\n")
    return tmp_path


def test_items_carry_title_and_genres(tiny_movielens: Path) -> None:
    items = {r.key: r.value["text"] for r in movielens_items(tiny_movielens)}
    assert items == {"1": "Toy Story (1995). Genres: Adventure, Comedy", "2": "Heat, The (1995)"}


def test_events_are_mapped_and_in_time_order(tiny_movielens: Path) -> None:
    events = movielens_events(tiny_movielens)
    assert [(r.topic, r.value["user_id"], r.ts) for r in events] == [
        ("clicks", "1", 100.0),  # ties: by user, then item
        ("clicks", "2", 100.0),
        ("reviews", "1", 150.0),
        ("views", "1", 200.0),
    ]
    assert events[0].value["rating"] == 4.5 and events[2].value["text"] == "funny"
    assert len({r.value["event_id"] for r in events}) == 4


def test_feedback_is_derived_from_ratings(tiny_movielens: Path) -> None:
    (tiny_movielens / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,2,3.0,200\n1,1,4.5,100\n2,1,1.5,100\n2,2,2.0,300\n"
    )
    signals = feedback_of(movielens_events(tiny_movielens))
    assert [(r.topic, r.key, r.value["item_id"], r.value["signal"], r.ts) for r in signals] == [
        ("feedback", "1", "1", "positive", 101.0),  # 4.5
        ("feedback", "2", "1", "negative", 101.0),  # 1.5
        ("feedback", "2", "2", "negative", 301.0),  # 2.0; the 3.0 and the tag give none
    ]


def test_a_folder_without_the_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StreamError, match=r"movies\.csv not found"):
        list(movielens_items(tmp_path))
    (tmp_path / "movies.csv").write_text("id,name\n1,x\n")
    with pytest.raises(StreamError, match="missing columns"):
        list(movielens_items(tmp_path))


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        ("1,1,abc,100", r"ratings\.csv:2: rating must be a number, not 'abc'"),
        ("1,1,4.0,soon", r"ratings\.csv:2: timestamp must be a number, not 'soon'"),
        ("1,1,nan,100", r"ratings\.csv:2: rating must be a number, not 'nan'"),
    ],
)
def test_a_field_that_is_not_a_number_names_its_file_and_line(
    tiny_movielens: Path, ratings: str, message: str
) -> None:
    (tiny_movielens / "ratings.csv").write_text(f"userId,movieId,rating,timestamp\n{ratings}\n")
    with pytest.raises(StreamError, match=message):
        movielens_events(tiny_movielens)


def test_a_file_where_the_folder_belongs_is_a_clear_error(tiny_movielens: Path) -> None:
    with pytest.raises(StreamError, match="is a file, not a folder: is --path a MovieLens"):
        list(movielens_items(tiny_movielens / "ratings.csv"))


def test_string_ids_and_a_byte_order_mark_are_read(tiny_movielens: Path) -> None:
    """Ids may be any strings (numbers first, in numeric order, at equal times); a CSV
    saved with a UTF-8 byte-order mark reads as without one."""
    (tiny_movielens / "ratings.csv").write_bytes(
        b"\xef\xbb\xbfuserId,movieId,rating,timestamp\nbob,m2,4.0,100\n10,1,4.0,100\n9,1,3.0,100\n"
    )
    events = [r for r in movielens_events(tiny_movielens) if r.topic != "reviews"]
    assert [(r.key, r.value["item_id"]) for r in events] == [("9", "1"), ("10", "1"), ("bob", "m2")]


@pytest.mark.kafka
def test_waiting_for_items_without_a_worker_is_a_clear_error(kafka_broker, tiny_movielens) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        consumer_group=f"nobody-{uuid.uuid4().hex[:8]}",
    )
    ensure_topics(settings)
    with pytest.raises(StreamError, match="is a worker running"):
        replay_movielens(tiny_movielens, settings, progress=False, wait_items=1.0)
