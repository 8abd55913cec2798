"""Serving: the thin web layer for real-time play (`maskworld play`) and saved sessions.

`app` (assembles the FastAPI app), `protocol` (messages up, frames down), `connection` (one WebSocket),
`handlers` (one function per message type), `client` (a tab's state), `ticker` (one batched model
thread for all tabs), `server` (what they share), `security` (token, Origin, Host), `prompts`
(uploaded images, prompts.npz), `store` (SQLite sessions and their quota), `controls` and `keys`
(keys -> world actions), `static/` (the page). The core never imports this, and this imports
neither agents nor training: `maskworld play` passes the agent's policy in.
"""
