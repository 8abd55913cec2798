"""Memory M: what keeps a world consistent beyond its context window.

- working memory: the KV cache window (maskworld.models.dynamics.KVCache);
- compressed context: the frames that just left the window, pooled to fewer tokens (FramePack);
- retrieval memory: every past frame with its pose key, the nearest ones read by cross-attention.
"""
