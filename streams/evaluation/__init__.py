"""``interest-stream eval``: recommendation quality on real data, under a published protocol.

    data = read_movielens(Path("../shared/data/movielens-latest-small"))  # or read_pair(...)
    split = leave_one_out(five_core(data.interactions), data.texts)  # 90,274 / 610 / 3,650
    vectors, version = encode_items(split.texts, settings.models_root, settings)
    report = evaluate(split, vectors, version, settings)  # rows x {validation, test} x metrics

The parts: ``data`` reads a dataset (the generic ``events.csv`` + ``items.csv`` pair, or
MovieLens), ``protocol`` filters and splits it, ``metrics`` turns the rank of each user's
target into Recall / NDCG / MRR / coverage, ``rows`` scores every item for every user
(popularity, last item, interest vectors), ``pipeline`` replays the same history through
Kafka, the worker and Qdrant and ranks with Qdrant queries, ``report`` writes the README
table and the plot.
"""
