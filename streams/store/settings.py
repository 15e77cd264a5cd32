"""The one adapter from the process's Settings to a store.

store = store_for(Settings())      # a server with its API key, or the embedded store
"""

from __future__ import annotations

from streams.settings import Settings
from streams.store.base import Store
from streams.store.facade import open_store


def store_for(settings: Settings) -> Store:
    """The Qdrant store the settings name: a server with its API key, or the embedded one."""
    key = settings.qdrant_api_key
    store = open_store(
        settings.qdrant_url,
        key.get_secret_value() if key else None,
        settings.qdrant_location,
        settings.qdrant_backend,
        settings.qdrant_collection_prefix,
    )
    store.recent_items_payload = settings.recent_items_payload
    return store
