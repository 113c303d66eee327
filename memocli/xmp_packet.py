"""XMP packets as memo reads and changes them, whatever else they hold.

A packet is parsed with a real XML parser (``defusedxml``: no DTD, no entities, so no
billion laughs and no external entities) and kept as an element tree: memo gets and sets
single properties and bags by namespace and name, and every other namespace, value and
element (darktable's history stack) is serialised again as it was read, up to XML
round-trip (attribute quoting, where namespaces are declared).

XMP writes a simple property either as an attribute of ``rdf:Description``
(``xmp:Rating="3"``, darktable, exiv2) or as a child element (``<xmp:Rating>3</xmp:Rating>``,
exiftool), in one or several ``rdf:Description`` elements: both forms are read, and a
property is changed where it is found, else added as an attribute of the first
description (a bag as a child element).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from io import BytesIO

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
X = "adobe:ns:meta/"
XMP = "http://ns.adobe.com/xap/1.0/"
DC = "http://purl.org/dc/elements/1.1/"
LR = "http://ns.adobe.com/lightroom/1.0/"
#: memo's own namespace (docs/catalogues.md lists its properties).
MEMO = "http://ns.memocli.org/xmp/1.0/"

#: The prefixes memo writes for the namespaces it adds.
PREFIXES = {RDF: "rdf", X: "x", XMP: "xmp", DC: "dc", LR: "lr", MEMO: "memo"}

#: Largest packet memo reads (darktable's history stacks reach a few hundred kB).
MAX_PACKET_BYTES = 16 << 20

_XPACKET_BEGIN = "<?xpacket begin=\"\ufeff\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
_XPACKET_END = "\n<?xpacket end=\"w\"?>\n"


class PacketError(ValueError):
    """An XMP packet memo will not read or change (the message says why)."""


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class Packet:
    """One XMP packet: its element tree and the prefixes it declared."""

    def __init__(self, root: ET.Element, prefixes: dict[str, str], wrapped: bool):
        self.root = root
        self.prefixes = prefixes  # uri -> prefix, as declared in the source
        self.wrapped = wrapped  # the source had <?xpacket?> wrappers

    @classmethod
    def new(cls) -> Packet:
        """An empty packet: ``x:xmpmeta / rdf:RDF / rdf:Description``."""
        root = ET.Element(_q(X, "xmpmeta"))
        rdf = ET.SubElement(root, _q(RDF, "RDF"))
        rdf.text = "\n  "
        description = ET.SubElement(rdf, _q(RDF, "Description"), {_q(RDF, "about"): ""})
        description.tail = "\n"
        return cls(root, {}, wrapped=False)

    @classmethod
    def parse(cls, data: bytes) -> Packet:
        """Parse a sidecar's or a file's packet.

        Raises:
            PacketError: too large, not UTF-8, not XML, a DTD or entities, no ``rdf:RDF``.
        """
        if len(data) > MAX_PACKET_BYTES:
            raise PacketError(f"too large ({len(data) / 2**20:.1f} MB; memo reads XMP up "
                              f"to {MAX_PACKET_BYTES >> 20} MB)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise PacketError(f"not UTF-8 text (byte {e.start})") from None
        prefixes: dict[str, str] = {}
        parser = DefusedXMLParser(target=ET.TreeBuilder(insert_comments=True),
                                  forbid_dtd=True, forbid_entities=True,
                                  forbid_external=True)
        try:
            events = ET.iterparse(BytesIO(text.encode("utf-8")), ("start-ns",), parser=parser)
            for _, (prefix, uri) in events:
                prefixes.setdefault(uri, prefix)
            root = events.root
        except DefusedXmlException as e:
            raise PacketError(f"refused: {type(e).__name__} (XML entities or a DTD are "
                              "never part of XMP)") from None
        except ET.ParseError as e:
            raise PacketError(f"not valid XML ({e})") from None
        if root.tag != _q(RDF, "RDF") and root.find(f".//{_q(RDF, 'RDF')}") is None:
            raise PacketError("not XMP (no rdf:RDF element)")
        return cls(root, prefixes, wrapped="<?xpacket" in text[:200])

    # -- reading --------------------------------------------------------------------------

    def descriptions(self) -> list[ET.Element]:
        """The ``rdf:Description`` elements directly under ``rdf:RDF``."""
        rdf = self.root if self.root.tag == _q(RDF, "RDF") else self.root.find(
            f".//{_q(RDF, 'RDF')}")
        found = rdf.findall(_q(RDF, "Description"))
        if not found:
            found = [ET.SubElement(rdf, _q(RDF, "Description"), {_q(RDF, "about"): ""})]
        return found

    def get(self, ns: str, name: str) -> str | None:
        """A simple property's value, or None."""
        for d in self.descriptions():
            if _q(ns, name) in d.attrib:
                return d.attrib[_q(ns, name)]
            element = d.find(_q(ns, name))
            if element is not None:
                return (element.text or "").strip()
        return None

    def bag(self, ns: str, name: str) -> list[str]:
        """The items of an array property (``rdf:Bag``/``rdf:Seq``/``rdf:Alt``), or []."""
        for d in self.descriptions():
            element = d.find(_q(ns, name))
            if element is not None:
                return [(li.text or "").strip() for li in element.iter(_q(RDF, "li"))]
        return []

    def properties(self) -> dict[str, object]:
        """Every top-level property, ``{'{ns}name': value}`` (an element as a tuple of its
        parts): what a packet means, for comparing two packets (prefixes and layout
        aside)."""
        found = {}
        for d in self.descriptions():
            for key, value in d.attrib.items():
                if key != _q(RDF, "about"):
                    found[key] = value
            for child in d:
                if isinstance(child.tag, str):
                    found[child.tag] = _canonical(child)
        return found

    # -- changing -------------------------------------------------------------------------

    def set(self, ns: str, name: str, value: str) -> None:
        """Give a simple property ``value`` where it is, else as an attribute."""
        for d in self.descriptions():
            if _q(ns, name) in d.attrib:
                d.set(_q(ns, name), value)
                return
            element = d.find(_q(ns, name))
            if element is not None:
                element.text = value
                return
        self.descriptions()[0].set(_q(ns, name), value)

    def delete(self, ns: str, name: str) -> None:
        """Remove a property (simple or array) wherever it is."""
        for d in self.descriptions():
            d.attrib.pop(_q(ns, name), None)
            for element in d.findall(_q(ns, name)):
                d.remove(element)

    def set_bag(self, ns: str, name: str, items: list[str]) -> None:
        """Make an array property hold ``items`` (keeping its kind, Bag by default); an
        empty list removes it."""
        if not items:
            self.delete(ns, name)
            return
        for d in self.descriptions():
            element = d.find(_q(ns, name))
            if element is not None:
                array = next((c for c in element if isinstance(c.tag, str)), None)
                if array is None:
                    array = ET.SubElement(element, _q(RDF, "Bag"))
                for li in list(array):
                    array.remove(li)
                _fill(array, items)
                return
        description = self.descriptions()[0]
        last = description[-1] if len(description) else None
        element = ET.SubElement(description, _q(ns, name))
        element.text = "\n    "
        if last is not None:
            element.tail, last.tail = last.tail, "\n   "
        else:
            description.text, element.tail = "\n   ", "\n  "
        _fill(ET.SubElement(element, _q(RDF, "Bag")), items)

    def is_empty(self) -> bool:
        """True when no property is left."""
        return not self.properties()

    def to_bytes(self) -> bytes:
        """The packet as UTF-8 XML (with the ``<?xpacket?>`` wrapper when it had one)."""
        for uri, prefix in {**PREFIXES, **self.prefixes}.items():
            if prefix and not re.fullmatch(r"ns\d+", prefix):
                try:
                    ET.register_namespace(prefix, uri)
                except ValueError:
                    pass  # a prefix ElementTree reserves: it picks another
        body = ET.tostring(self.root, encoding="unicode")
        head = '<?xml version="1.0" encoding="UTF-8"?>\n'
        if self.wrapped:
            return (_XPACKET_BEGIN + body + _XPACKET_END).encode("utf-8")
        return (head + body + "\n").encode("utf-8")


def _fill(array: ET.Element, items: list[str]) -> None:
    array.text = "\n     "
    for i, item in enumerate(items):
        li = ET.SubElement(array, _q(RDF, "li"))
        li.text = item
        li.tail = "\n     " if i + 1 < len(items) else "\n    "
    array.tail = "\n   "


def _canonical(element: ET.Element) -> tuple:
    """``element``'s names (with namespace URIs), attributes, text and children, whitespace
    aside: equal for equal XML whatever the prefixes and layout."""
    return (element.tag, tuple(sorted(element.attrib.items())), (element.text or "").strip(),
            tuple(_canonical(c) for c in element if isinstance(c.tag, str)))
