"""Serving: the thin web layer for real-time play (`maskworld play`) and saved sessions.

`app` (FastAPI + WebSocket), `ticker` (one batched model loop for all clients), `store` (SQLite
sessions), `keys` (action meanings -> key bindings), `static/` (the page). The core never imports this.
"""
