"""Examples shown under `maskworld COMMAND --help` for commands whose module defines none.

Keys are the command path after `maskworld` ("data merge", "sessions list"); values are argparse epilogs.
`maskworld.cli.build_parser` attaches them; tests/test_docs.py parses every example line with the real
parser, so an example cannot drift from the flags it shows.
"""

from __future__ import annotations

EXAMPLES: dict[str, str] = {
    "envs": """examples:
  maskworld envs                         # ids maskworld knows; any Gymnasium id that renders rgb_array also works
""",
    "collect": """examples:
  maskworld collect --env MiniGrid-FourRooms-v0 --steps 60000 --out data/minigrid --policy explore
  maskworld collect --env procgen:coinrun --steps 30000 --out data/coinrun --max-episode-steps 200
  maskworld collect --env MiniGrid-FourRooms-v0 --steps 1000000 --out data/part0 --shard 0/2   # one machine's part
  maskworld collect --env BabyAI-GoToLocal-v0 --view full --steps 30000 --out data/babyai --policy bot:0.7,explore:0.3
  maskworld collect --env MultiAgent-Coins-v0 --agents 2 --steps 30000 --out data/coins --policy explore
""",
    "import-video": """examples:
  maskworld import-video clips/ --out data/video
  maskworld import-video run1.mp4 run2.webm --out data/video --size 64 --fps-stride 2
""",
    "data": """examples:
  maskworld data info data/minigrid
  maskworld data verify data/minigrid
  maskworld data merge data/minigrid data/part0 data/part1
""",
    "data info": """examples:
  maskworld data info data/minigrid
  maskworld data info s3://bucket/minigrid             # any fsspec URL
""",
    "data verify": """examples:
  maskworld data verify data/minigrid                  # exit 1 if a shard or an episode is damaged
""",
    "data merge": """examples:
  maskworld data merge data/minigrid data/part0 data/part1
""",
    "map-actions": """examples:
  maskworld map-actions worlds/video --data data/labelled --transitions 200
  maskworld map-actions worlds/coinrun-lam --data data/coinrun --transitions 200 --heldout 3200
""",
    "rollout": """examples:
  maskworld rollout worlds/minigrid --data data/minigrid --out rollout.mp4
  maskworld rollout worlds/minigrid --data data/minigrid --out rollout.gif --episodes 2 --horizon 16 --context 4
""",
    "play": """examples:
  maskworld play                                       # the shipped world; open the printed URL
  maskworld play worlds/minigrid --port 8000 --db sessions.db
  maskworld play worlds/minigrid --host 0.0.0.0 --token SECRET   # off loopback: open with ?token=SECRET
  maskworld play breakout --persistent town --fps 10    # a shared persistent world: every tab sees it, one drives
""",
    "sessions": """examples:
  maskworld sessions list
  maskworld sessions show my-walk --thumbnail last.png
  maskworld sessions delete my-walk --db sessions.db
  maskworld sessions replay town --gif town.gif
""",
    "sessions list": """examples:
  maskworld sessions list
  maskworld sessions list --db sessions.db --json
""",
    "sessions show": """examples:
  maskworld sessions show my-walk
  maskworld sessions show my-walk --thumbnail last.png --json
""",
    "sessions delete": """examples:
  maskworld sessions delete my-walk
  maskworld sessions delete my-walk --db sessions.db
""",
    "sessions replay": """examples:
  maskworld sessions replay town                        # a hosted world's every tick again, frames checked
  maskworld sessions replay town --to 500 --gif town.gif
""",
    "sessions branch": """examples:
  maskworld sessions branch town town-b --at 500
  maskworld host town-b                                 # the branch lives on from tick 500
""",
    "demo": """examples:
  maskworld demo                                       # play the shipped world (= make demo)
  maskworld demo --train                               # collect, train a tiny world, write a rollout video
  maskworld demo --train --env MiniGrid-Empty-8x8-v0 --steps 20000 --minutes 6 --out demo_out
""",
}
