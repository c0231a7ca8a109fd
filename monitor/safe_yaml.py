"""Reading a YAML file that may be hostile: bounded in bytes, aliases and nesting.

PyYAML's ``safe_load`` refuses arbitrary objects but not an alias bomb ("billion laughs": a few
hundred bytes of nested anchors expanding to billions of nodes, which everything that walks the
loaded data then pays for) nor a file of any size or depth. Here the file is read up to a limit,
the node graph is composed, its fully expanded size is counted (linear in the graph, aliases
memoised) and only then built into Python objects. Every refusal is one line that never quotes
the file's content, which may hold a password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ["MAX_FILE_BYTES", "MAX_NODES", "YamlFileError", "read_yaml_file"]

MAX_FILE_BYTES: Final = 1024 * 1024
#: Nodes after expanding every alias: a large real config has a few thousand.
MAX_NODES: Final = 100_000
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlFileError(ValueError):
    """The file cannot be used; the message is one line, without the file's content."""


def read_yaml_file(path: Path, max_bytes: int = MAX_FILE_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """Read and parse one YAML document from ``path``; raise :class:`YamlFileError` if unusable.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "c.yaml"
    ...     _ = p.write_text("a: &x [1, 2]\\nb: *x\\n")
    ...     read_yaml_file(p)
    {'a': [1, 2], 'b': [1, 2]}
    """
    text = _read_text(path, max_bytes)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = _expanded_size(node, max_nodes)
        if expanded > max_nodes:
            raise YamlFileError(
                f"expands to more than {max_nodes} nodes through aliases (an alias bomb?)"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        # Position and problem only: PyYAML's own message quotes the offending line, which may
        # be the one holding a password.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(exc, "problem", None) or "syntax error")[:100]
        raise YamlFileError(f"not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise YamlFileError("nested too deeply") from None
    finally:
        loader.dispose()


def _read_text(path: Path, max_bytes: int) -> str:
    if path.is_dir():
        raise YamlFileError("is a directory; give the path of a YAML file")
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)  # read() bounded: a FIFO or /dev/zero has no size
    except OSError as exc:
        raise YamlFileError(exc.strerror or type(exc).__name__) from None
    if len(raw) > max_bytes:
        raise YamlFileError(f"larger than {max_bytes} bytes; is this the config file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlFileError(
            f"not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})"
        ) from None


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes of the document with every alias expanded; stops counting past ``limit``.

    Iterative (a deep document must not exhaust the stack); an alias is the same node object
    as its anchor, so sizes are memoised by identity and a cycle (a recursive alias) is seen.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in _children(node)))
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlFileError("an alias refers to a node that contains it (recursive alias)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
