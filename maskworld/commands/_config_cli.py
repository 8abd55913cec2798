"""Argparse options generated from config dataclasses, so each option is written once: as a field.

    add_config_arguments(parser, TrainConfig)      # one --flag per leaf field, one group per section
    overrides = config_overrides(args, TrainConfig)  # {field: value} for the flags the user gave

- name: `d_model` -> `--d-model`; a bool is `--flag/--no-flag` (argparse.BooleanOptionalAction);
- type from the annotation: int, float, str, bool, `X | None`, `Literal[...]` (-> choices);
- help: the string literal right under the field (read from the class source with `ast`), then the real
  default: the field's own, or metadata["default_text"] where that is None (e.g. the preset's values);
- a field without a default is a required option; metadata {"cli": False} keeps a field off the command line,
  metadata["metavar"] names its value;
- a field whose type is itself a dataclass is a section: an argument group titled by its name.

Defaults stay out of the namespace (argparse.SUPPRESS), so `config_overrides` returns exactly what was typed
and the config's own defaults (or a preset's) fill the rest.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal, Union


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field: the string literal under it} for a dataclass, its bases included, whitespace folded to one line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body
        for node, nxt in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def leaf_fields(cls: type) -> Iterator[tuple[str | None, dataclasses.Field, type]]:
    """(section, field, type) for every command-line field of `cls`, sections expanded (section None: top level)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            for _, leaf, leaf_tp in leaf_fields(tp):
                yield f.name, leaf, leaf_tp
        elif f.metadata.get("cli", True):
            yield None, f, tp


def _owner_docs(cls: type) -> dict[str, str]:
    """Field docs of `cls` and all its sections, by leaf name."""
    docs = dict(field_docs(cls))
    for tp in typing.get_type_hints(cls).values():
        if dataclasses.is_dataclass(tp):
            docs.update(_owner_docs(tp))
    return docs


def _unwrap(tp: Any) -> tuple[Any, list | None]:
    """(the value type, its choices or None) of an annotation: `X | None` -> X, Literal[a, b] -> (type(a), [a, b])."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"cannot make an option of {tp}")
        tp = inner[0]
    if typing.get_origin(tp) is Literal:
        choices = list(typing.get_args(tp))
        return type(choices[0]), choices
    if tp not in (int, float, str, bool):
        raise TypeError(f"cannot make an option of {tp}; give the field metadata {{'cli': False}}")
    return tp, None


def _class_doc(cls: type) -> str | None:
    """The class's own docstring; None for the signature dataclasses put there when it has none."""
    doc = cls.__dict__.get("__doc__")
    return None if not doc or doc.startswith(cls.__name__ + "(") else inspect.cleandoc(doc)


def _default_text(f: dataclasses.Field) -> str | None:
    if "default_text" in f.metadata:
        return str(f.metadata["default_text"])
    if f.default is dataclasses.MISSING or f.default is None:
        return None
    return str(f.default)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, only: set[str] | None = None) -> None:
    """Add one option per leaf field of dataclass `cls` (or of `only` among them), grouped by section."""
    docs, groups = _owner_docs(cls), {}
    for section, f, tp in leaf_fields(cls):
        if only is not None and f.name not in only:
            continue
        if section not in groups:
            doc = None if section is None else _class_doc(typing.get_type_hints(cls)[section])
            groups[section] = parser if section is None else parser.add_argument_group(section, doc)
        value_type, choices = _unwrap(tp)
        help_ = docs.get(f.name, "").replace("%", "%%")
        shown = _default_text(f)
        if shown is not None:
            help_ += f" (default: {shown.replace('%', '%%')})"
        kw: dict[str, Any] = {"dest": f.name, "help": help_ or None, "default": argparse.SUPPRESS}
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if value_type is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw.update(type=value_type, choices=choices, metavar=f.metadata.get("metavar"), required=required)
        groups[section].add_argument("--" + f.name.replace("_", "-"), **kw)


def config_overrides(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """{leaf field: value} of the options given on the command line (flat: names are unique in a config tree)."""
    names = {f.name for _, f, _ in leaf_fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}
