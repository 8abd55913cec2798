"""Version numbers, in a module of their own so that any layer can read them without importing `maskworld`'s
package API (whose `load_world` reaches the world layer)."""

__version__ = "0.1.0"

WORLD_FORMAT_VERSION = 1
"""Version of the world-directory format; bumped when world.json or weight names change."""
