"""`maskworld train world|tokenizer|dynamics`."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  maskworld train world --data data/minigrid --out worlds/minigrid --preset small --minutes 60
  maskworld train world --data data/minigrid --out worlds/minigrid --preset small --minutes 60 --resume
  maskworld train tokenizer --data data/minigrid --out worlds/minigrid --minutes 15
  maskworld train dynamics  --data data/minigrid --out worlds/minigrid --minutes 45
  maskworld train world --data data/video --out worlds/video --minutes 60          # action-free: latent actions
  maskworld train world --data data/empty8 --out worlds/empty8 --preset tiny --minutes 25 --event-share 0.25  # sparse reward
  maskworld train world --data data/coinrun --out worlds/coinrun-lam --ignore-actions --minutes 60
  torchrun --nproc-per-node 2 -m maskworld train world --data data/minigrid --out worlds/minigrid --preset tiny --steps 200
  torchrun --nproc-per-node 8 -m maskworld train world --data data/minigrid --out worlds/mg --preset base --minutes 60 --batch 256 --compile
  torchrun --nproc-per-node 8 -m maskworld train world --data s3://bucket/mg --out worlds/mg --preset base --minutes 60 --data-split rank
TensorBoard: tensorboard --logdir WORLD/_work/tb
Several processes (torchrun): --batch/--tok-batch are global (split across the processes); docs/scale.md.
"""


STAGES = {"world": ("tokenizer", "dynamics"), "tokenizer": ("tokenizer",), "dynamics": ("dynamics",)}


def register(sub) -> None:
    from maskworld.commands import agent_cmd, locator_cmd
    from maskworld.commands._config_cli import add_config_arguments
    from maskworld.train.config import TrainConfig

    p = sub.add_parser("train", help="train a world (tokenizer -> token cache -> dynamics)",
                       description="Train a world or one of its stages.", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = p.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage, help_ in [("world", "the whole pipeline: tokenizer, token cache, dynamics"),
                         ("tokenizer", "the FSQ tokenizer alone (writes OUT/tokenizer.*)"),
                         ("dynamics", "the dynamics model on OUT's trained tokenizer")]:
        sp = tsub.add_parser(stage, help=help_, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        add_config_arguments(sp, TrainConfig)  # every option is a field of maskworld.train.config
        sp.set_defaults(func=run)
    agent_cmd.register_train_agent(tsub)
    locator_cmd.register_train_locator(tsub)


def run(args) -> int:
    from maskworld.commands._config_cli import config_overrides
    from maskworld.train.config import TrainConfig, train_config
    from maskworld.train.world_train import run_train

    settings = config_overrides(args, TrainConfig)
    if settings.get("preset", "auto") == "auto":
        settings["preset"], settings["preset_reason"] = auto_preset(settings, args.stage)
    cfg = train_config(**settings, stages=STAGES[args.stage], command_line=getattr(args, "command_line", None))
    run_train(cfg)
    return 0


def auto_preset(settings: dict, stage: str) -> tuple[str, tuple[str, ...]]:
    """`--preset auto` (the default): measured on this machine, printed with the reason; a resumed run keeps the
    choice it recorded. One process decides alone: under torchrun every rank would measure its own, so there the
    choice is `small` unless --preset says. -> (preset, why)."""
    import json
    import os
    from pathlib import Path

    from maskworld.data.store import EpisodeStore
    from maskworld.device import pick_device
    from maskworld.train.auto_preset import DEFAULT, PRESET_RECORD, choose_preset
    from maskworld.train.config import TOK_SHARE, run_optimizer

    record = Path(str(settings.get("out", ""))) / "_work" / PRESET_RECORD
    if settings.get("resume") and record.exists():
        chosen = json.loads(record.read_text())["preset"]
        print(f"[auto] preset {chosen}, as this run chose when it started ({record})")
        return chosen, ()
    if settings.get("resume") or settings.get("init") or int(os.environ.get("WORLD_SIZE", "1")) > 1 or stage == "tokenizer":
        print(f"[auto] preset {DEFAULT} (a resumed or --init run, several processes or the tokenizer alone: "
              "give --preset to choose)")
        return DEFAULT, ()
    try:
        size = int(EpisodeStore(settings["data"]).meta.get("size", 64))
    except Exception:  # the run itself reports a bad --data clearly
        return DEFAULT, ()
    share = 1.0 if stage == "dynamics" else 1.0 - TOK_SHARE
    name, why = choose_preset(settings.get("minutes"), pick_device(settings.get("device")), size, share,
                              run_optimizer(settings), settings.get("codebook") or 1000)
    print("\n".join(why), flush=True)
    return name, tuple(why)
