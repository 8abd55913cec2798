"""`maskworld import-video`: videos or frame folders -> action-free episodes."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "import-video",
        help="import videos / frame folders as action-free episodes",
        description=("Decode mp4/webm/gif files (or folders of PNG/JPEG frames, one episode per folder) "
                     "into an episode store with unknown actions (-1), for latent-action training. "
                     "Importing into an existing store appends and skips files already imported."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="video files or folders")
    p.add_argument("--out", required=True, help="store directory")
    p.add_argument("--size", type=int, default=64, help="frames are center-cropped and resized to size x size")
    p.add_argument("--fps-stride", type=int, default=1, help="keep every k-th frame")
    p.add_argument("--squash", action="store_true", help="resize the whole frame instead of center-cropping")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskworld.data.video import import_videos
    from maskworld.errors import UserError

    if args.size < 8:
        raise UserError(f"--size must be >= 8, not {args.size}")
    stats = import_videos(args.paths, args.out, size=args.size, fps_stride=args.fps_stride, crop=not args.squash,
                          command=args.command_line, progress=not args.no_progress)
    msg = f"imported {stats['episodes']} episodes ({stats['frames']} frames) into {args.out}"
    if stats["skipped"]:
        msg += f"; skipped {stats['skipped']} already imported"
    print(msg)
    return 0
