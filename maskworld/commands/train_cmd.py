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
  torchrun --nproc-per-node 8 -m maskworld train world --data data/minigrid --out worlds/minigrid --preset base --minutes 60 --batch 256 --compile
  torchrun --nproc-per-node 8 -m maskworld train world --data s3://bucket/minigrid --out worlds/minigrid --preset base --minutes 60 --data-split rank
TensorBoard: tensorboard --logdir WORLD/_work/tb
Several processes (torchrun): --batch/--tok-batch are global (split across the processes); README "Scale".
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="episode store (path or fsspec URL) from `maskworld collect` / `import-video`")
    p.add_argument("--out", required=True, help="world directory to write (world.json + *.safetensors; checkpoints in OUT/_work)")
    p.add_argument("--preset", default="small", choices=["tiny", "small", "base"], help="model size dial (default small)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--minutes", type=float, help="wall-clock training budget (split 30/70 tokenizer/dynamics for `world`)")
    g.add_argument("--steps", type=int, help="optimisation steps per stage")
    p.add_argument("--tok-minutes", type=float, help="override the tokenizer's share of --minutes")
    p.add_argument("--tok-steps", type=int, help="override the tokenizer's steps")
    p.add_argument("--grid", type=int, choices=[8, 16], help="tokens per frame side (default: the preset's, 8 = 64 tokens; 16 is sharper and ~4x dearer)")
    p.add_argument("--window", type=int, help="context window in frames (default: the preset's); the KV cache holds window-1 frames")
    p.add_argument("--d-model", type=int, help="dynamics width (default: the preset's; tiny 96, small 256, base 384)")
    p.add_argument("--layers", type=int, help="dynamics depth (default: the preset's; tiny 2, small 4, base 8)")
    p.add_argument("--batch", type=int, help="dynamics clips per step (default: the preset's; raise it on a GPU)")
    p.add_argument("--tok-batch", type=int, help="tokenizer frames per step (default: the preset's)")
    p.add_argument("--ckpt-minutes", type=float, default=5.0, help="minutes between checkpoints (default 5)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT/_work")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, ...")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out share of episodes (split by episode, seeded)")
    p.add_argument("--ignore-actions", action="store_true", help="treat the data as action-free video (a latent-action world)")
    p.add_argument("--latent-actions", type=int, default=8, metavar="K",
                   help="action-free data: latent actions the LAM learns (default 8; 0 = a video model with no actions)")
    p.add_argument("--lam-share", type=float, default=0.25, help="share of the dynamics' --minutes spent on the LAM (default 0.25)")
    p.add_argument("--lam-steps", type=int, help="LAM steps when the budget is --steps (default: --steps)")
    p.add_argument("--label-transitions", type=int, default=200,
                   help="with --ignore-actions on labelled data: transitions that fit the real->latent key map (default 200)")
    p.add_argument("--memory", type=int, default=0, metavar="M",
                   help="memory M: retrieved past frames each predicted frame reads, keyed by pose (0 = off; needs data "
                        "with poses, e.g. MiniGrid-Landmarks-v0)")
    p.add_argument("--compressed", type=int, metavar="C",
                   help="memory M: frames just older than the window, read at a quarter of their tokens (default 2 with --memory)")
    p.add_argument("--event-share", type=float, metavar="F",
                   help="share of each dynamics batch's clips that end on a reward or termination transition, so a "
                        "sparse-reward world learns to imagine the rewarding step (default 0.25 when the data has any, "
                        "else 0; 0 = uniform clips)")
    p.add_argument("--context-drop", type=float, default=0.0, metavar="F",
                   help="share of dynamics clips whose context is mostly noise (as after a long rollout), so a memory "
                        "world learns to rebuild places from memory (default 0)")
    p.add_argument("--copy-head", action="store_true",
                   help="memory M: also predict tokens by pointing at the retrieved frames' tokens (exact copies of "
                        "small details; with --memory, or added to an --init world that has memory)")
    p.add_argument("--init", metavar="WORLD",
                   help="start the dynamics from WORLD's weights and config (a fine-tune, e.g. with --context-drop)")
    p.add_argument("--fsdp", action="store_true", help="shard parameters across GPUs with FSDP2 (under torchrun, CUDA only)")
    p.add_argument("--data-split", choices=["global", "rank"], default="global",
                   help="under torchrun: 'global' (default) = every process draws the same global batch and trains on its "
                        "part, matching one process exactly; 'rank' = each process reads only its own episodes "
                        "(less memory and I/O per process, tokenization in parallel; results depend on the process count)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward (worth it on GPUs)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars (logs only)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a world (tokenizer -> token cache -> dynamics)",
                       description="Train a world or one of its stages.", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = p.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage, help_ in [("world", "the whole pipeline: tokenizer, token cache, dynamics"),
                         ("tokenizer", "the FSQ tokenizer alone (writes OUT/tokenizer.*)"),
                         ("dynamics", "the dynamics model on OUT's trained tokenizer")]:
        sp = tsub.add_parser(stage, help=help_, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(sp)
        sp.set_defaults(func=run)
    ap = tsub.add_parser("agent", help="an actor-critic trained in imagination, alternating with real experience (Dyna)",
                         description="Train an agent C inside a world (batched imagined rollouts, lambda-returns), "
                                     "collecting real experience with the current policy between rounds and updating "
                                     "the world on it (the Dyna loop).",
                         epilog=AGENT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True, help="world directory (needs reward and termination heads)")
    ap.add_argument("--env", help="real environment id (default: the world's)")
    ap.add_argument("--real-steps", type=int, default=10_000, help="real environment steps in all")
    ap.add_argument("--out", help="agent directory (default: WORLD/agent)")
    ap.add_argument("--view", choices=["partial", "full"], help="MiniGrid view of the real env (default: the world's data's)")
    ap.add_argument("--data", help="the world's data store, for start frames (default: the path on its model card)")
    # defaults live in AgentTrainConfig (not imported here: `maskworld --help` stays free of torch)
    ap.add_argument("--horizon", type=int, help="imagined steps per rollout (default 15)")
    ap.add_argument("--batch", type=int, help="imagined rollouts per update (default 32)")
    ap.add_argument("--collect-every", type=int, help="real steps between rounds of updates (default 100)")
    ap.add_argument("--updates-per-collect", type=int, help="updates per round (default 4)")
    ap.add_argument("--entropy", type=float, help="entropy bonus on normalised advantages (default 3e-3)")
    ap.add_argument("--gamma", type=float, help="discount (default 0.985)")
    ap.add_argument("--lr", type=float, help="Adam learning rate (default 3e-4)")
    ap.add_argument("--sampler-steps", type=int, help="MaskGIT steps per imagined frame (default: the world's)")
    ap.add_argument("--channels", type=int, help="agent CNN width (default 32)")
    ap.add_argument("--data-starts", type=float,
                    help="share of start frames from the world's data (default 0.5; 0 = the agent's real frames only)")
    ap.add_argument("--world-updates", type=int,
                    help="world (dynamics) gradient steps on real experience after each collect round (default 10; "
                         "0 = the world stays frozen); the updated world is saved as OUT/world")
    ap.add_argument("--world-batch", type=int, help="clips per world update (default 16)")
    ap.add_argument("--world-lr", type=float, help="learning rate of the world updates (default 1e-4)")
    ap.add_argument("--world-real-share", type=float,
                    help="share of each world batch from the agent's real episodes, the rest from the world's data (default 0.5)")
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT/_work")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0, help="minutes between checkpoints (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    ap.set_defaults(func=run_agent)


AGENT_EXAMPLES = """examples:
  maskworld train agent --world worlds/empty8 --env MiniGrid-Empty-8x8-v0 --real-steps 20000 --sampler-steps 1
  maskworld train agent --world worlds/empty8 --real-steps 20000 --resume          # continue a stopped run
  maskworld train agent --world worlds/empty8 --world-updates 0                    # keep the world frozen
  maskworld eval-agent worlds/empty8/agent --episodes 20                           # real returns + PPO baseline
  maskworld play worlds/empty8/agent/world                                         # watch it (key G: agent drives)
Output: OUT/agent.json + agent.safetensors, OUT/world (the updated world), OUT/_work (checkpoints, TensorBoard)."""


def run_agent(args) -> int:
    from pathlib import Path

    from maskworld import load_world
    from maskworld.agents.actor_critic import AgentTrainConfig, train_agent

    world = load_world(args.world, device=None if args.device == "auto" else args.device)
    out = args.out or str(Path(args.world) / "agent")
    given = {k: getattr(args, k) for k in ("horizon", "batch", "collect_every", "updates_per_collect", "entropy", "data_starts",
                                           "sampler_steps", "channels", "gamma", "lr", "world_updates", "world_batch",
                                           "world_lr", "world_real_share")}
    cfg = AgentTrainConfig(**{k: v for k, v in given.items() if v is not None})
    _, m = train_agent(world, env_id=args.env, real_steps=args.real_steps, cfg=cfg, seed=args.seed, out=out,
                       progress=args.progress, view=args.view, data=args.data,
                       command=getattr(args, "command_line", None), resume=args.resume, ckpt_minutes=args.ckpt_minutes)
    shown = {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    print(f"agent saved to {out}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
    return 0


def run(args) -> int:
    from maskworld.train.world_train import TrainArgs, run_train

    a = TrainArgs(data=args.data, out=args.out, preset=args.preset, minutes=args.minutes, steps=args.steps,
                  tok_minutes=args.tok_minutes, tok_steps=args.tok_steps, resume=args.resume, seed=args.seed,
                  device=args.device, val_fraction=args.val_fraction, progress=args.progress,
                  ignore_actions=args.ignore_actions, grid=args.grid, batch=args.batch, tok_batch=args.tok_batch, ckpt_minutes=args.ckpt_minutes, window=args.window,
                  fsdp=args.fsdp, compile=args.compile, data_split=args.data_split, command_line=args.command_line,
                  latent_actions=args.latent_actions, lam_share=args.lam_share, lam_steps=args.lam_steps,
                  label_transitions=args.label_transitions, memory=args.memory, compressed=args.compressed,
                  event_share=args.event_share, d_model=args.d_model, layers=args.layers,
                  context_drop=args.context_drop, init=args.init, copy_head=args.copy_head)
    stages = {"world": ("tokenizer", "dynamics"), "tokenizer": ("tokenizer",), "dynamics": ("dynamics",)}[args.stage]
    if args.stage == "dynamics" and a.tok_steps is None and a.tok_minutes is None:
        a.tok_steps = 1  # unused: the tokenizer is loaded from OUT
    run_train(a, stages)
    return 0
