"""Persistent worlds (the paper's Stage V): a world instance that keeps its own time and history, outliving every
session and process. `timeline.py` is its durable history (SQLite), `host.py` the clock that advances it."""
