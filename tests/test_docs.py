"""The documentation cannot drift from the code: every command line in README.md and docs/*.md, and every example
under `maskworld COMMAND --help`, is parsed by the real parser; the README's command table is the parser's own."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from maskworld.cli import build_parser, commands_markdown, iter_commands

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 25_000

# A command line: `maskworld ...`, optionally after VAR=value assignments, or `... -m maskworld ...` (torchrun).
_COMMAND = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*maskworld(?:\s|$)|\s-m\s+maskworld(?:\s|$)")


def code_block_lines(text: str) -> list[tuple[int, str]]:
    """(line number, logical line) of every fenced or indented code block; backslash continuations joined."""
    out, fence, indented_ok, pending = [], None, True, None
    for no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence = stripped[:3]
            continue
        if fence is not None and stripped.startswith(fence):
            fence = None
            continue
        in_code = fence is not None or (indented_ok and line.startswith("    ") and not stripped.startswith(("-", "*")))
        if fence is None:
            indented_ok = not stripped or line.startswith("    ")
        if not in_code:
            pending = None
            continue
        if pending is not None:
            pending = (pending[0], pending[1] + " " + stripped)
        else:
            pending = (no, stripped)
        if pending[1].endswith("\\"):
            pending = (pending[0], pending[1][:-1].rstrip())
            continue
        out.append(pending)
        pending = None
    return out


def command_argv(line: str) -> list[str] | None:
    """The arguments after `maskworld` of a command line, or None if the line is not one."""
    if not _COMMAND.search(line):
        return None
    words = shlex.split(line, comments=True)
    i = words.index("maskworld")
    return words[i + 1:]


def parse_error(parser, argv: list[str]) -> str | None:
    """None if argv parses to a runnable command, else argparse's message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv)
    except SystemExit:
        return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "argparse exited"
    if not getattr(args, "func", None):
        return "parses, but names no runnable command"
    return None


def doc_commands() -> list[tuple[str, list[str]]]:
    cases = []
    for path in [README, *DOCS]:
        for no, line in code_block_lines(path.read_text()):
            argv = command_argv(line)
            if argv is not None:
                cases.append((f"{path.relative_to(ROOT)}:{no}", argv))
    return cases


def help_examples() -> list[tuple[str, list[str]]]:
    cases = []
    for path, _, sp in iter_commands(build_parser()):
        for line in (sp.epilog or "").splitlines():
            argv = command_argv(line.strip())
            if argv is not None:
                cases.append((f"maskworld {' '.join(path)} --help", argv))
    return cases


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def test_readme_is_a_short_guide_with_the_demo_first():
    text = README.read_text()
    assert len(text.encode()) <= README_MAX_BYTES, "README.md is over 25 KB: move reference material to docs/"
    assert "make demo" in "\n".join(text.splitlines()[:40]), "`make demo` must be on the README's first screen"


def test_relative_links_resolve():
    broken = []
    for path in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" not in target and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, f"links to files that do not exist: {broken}"


def test_readme_command_table_is_the_parsers():
    text = README.read_text()
    m = re.search(r"<!-- commands:begin -->\n(.*?)<!-- commands:end -->", text, re.S)
    assert m, "README.md lost its <!-- commands:begin --> / <!-- commands:end --> markers"
    assert m.group(1) == commands_markdown(), (
        'README command table is stale; regenerate: python -c "import maskworld.cli as c; print(c.commands_markdown())"')


def test_docs_have_command_lines():
    files = {case.split(":")[0] for case, _ in doc_commands()}
    assert "README.md" in files and len(files) >= 5


@pytest.mark.parametrize("where,argv", doc_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_doc_command_lines_parse(parser, where, argv):
    err = parse_error(parser, argv)
    assert err is None, f"{where}: `maskworld {shlex.join(argv)}` does not parse: {err}"


def test_every_command_help_has_examples():
    missing = []
    for path, _, sp in iter_commands(build_parser()):
        name = " ".join(path)
        epilog = sp.epilog or ""
        if "examples" not in epilog.lower() or f"maskworld {name}" not in epilog or epilog.strip() not in sp.format_help():
            missing.append(name)
    assert not missing, f"commands without examples in --help: {missing} (add them to maskworld/commands/examples.py)"


def test_example_keys_are_real_commands():
    from maskworld.commands.examples import EXAMPLES

    real = {" ".join(path) for path, _, _ in iter_commands(build_parser())}
    assert not set(EXAMPLES) - real, f"examples for commands that do not exist: {set(EXAMPLES) - real}"


@pytest.mark.parametrize("where,argv", help_examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_help_examples_parse(parser, where, argv):
    err = parse_error(parser, argv)
    assert err is None, f"{where}: `maskworld {shlex.join(argv)}` does not parse: {err}"


def test_code_block_lines_join_continuations():
    text = "text `maskworld x`\n\n```bash\nmaskworld a \\\n    --b 1   # c\n```\n\n    maskworld d\n"
    assert code_block_lines(text) == [(4, "maskworld a --b 1   # c"), (8, "maskworld d")]
    assert command_argv("OMP_NUM_THREADS=1 maskworld train world --data d") == ["train", "world", "--data", "d"]
    assert command_argv("torchrun --nproc-per-node 2 -m maskworld demo") == ["demo"]
    assert command_argv("import maskworld") is None
