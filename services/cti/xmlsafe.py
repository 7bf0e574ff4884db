"""Safe XML for CSTA: the standard library's expat with every DTD refused (so no entity of any kind can
be declared or expanded), bounded size, depth and element count; names come back without namespaces."""
from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

MAX_DOCUMENT = 64 * 1024
MAX_DEPTH = 24
MAX_ELEMENTS = 2000


class XmlError(ValueError):
    pass


@dataclass
class Node:
    name: str  # local name
    ns: str
    children: list["Node"] = field(default_factory=list)
    text: str = ""

    def child(self, *path: str) -> "Node | None":
        """The first descendant along `path` (local names, each a direct child of the previous one)."""
        node: Node | None = self
        for name in path:
            node = next((c for c in node.children if c.name == name), None) if node else None
        return node

    def find(self, name: str) -> "Node | None":
        """The first element called `name` anywhere below this one."""
        for c in self.children:
            if c.name == name:
                return c
            found = c.find(name)
            if found is not None:
                return found
        return None

    def value(self, *path: str) -> str:
        node = self.child(*path)
        return node.text.strip() if node is not None else ""


def parse(data: bytes) -> Node:
    if len(data) > MAX_DOCUMENT:
        raise XmlError("document too large")
    parser = xml.parsers.expat.ParserCreate("UTF-8", namespace_separator="}")
    stack: list[Node] = []
    root: list[Node] = []
    count = [0]

    def refuse(*_args) -> None:
        raise XmlError("DTDs and entity declarations are not accepted")

    def start(name: str, _attrs) -> None:
        count[0] += 1
        if count[0] > MAX_ELEMENTS or len(stack) >= MAX_DEPTH:
            raise XmlError("document too deep or too large")
        ns, _, local = name.rpartition("}")
        node = Node(local, ns)
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack and len(stack[-1].text) < 4096:
            stack[-1].text += data

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    if not root:
        raise XmlError("no document element")
    return root[0]


def element(name: str, *content, ns: str | None = None) -> str:
    """<name>content</name>: content are strings already XML (from element()) or (text,) tuples."""
    inner = "".join(escape(c[0]) if isinstance(c, tuple) else c for c in content)
    attrs = f' xmlns="{ns}"' if ns else ""
    return f"<{name}{attrs}>{inner}</{name}>" if inner else f"<{name}{attrs}/>"


def text_element(name: str, value) -> str:
    return element(name, (str(value),))
