"""Sidecars as catalogues write them, and exiftool/exiv2 as independent readers."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None,
                                    reason="exiftool not installed")
needs_exiv2 = pytest.mark.skipif(shutil.which("exiv2") is None, reason="exiv2 not installed")

#: A darktable 4.x sidecar: user rating 2, a colour label, tags, a two-step history stack.
DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
   exif:DateTimeOriginal="2024:05:01 10:00:00"
   xmp:Rating="{rating}"
   xmpMM:DerivedFrom="{name}"
   darktable:import_timestamp="63850000000000000"
   darktable:xmp_version="5"
   darktable:history_end="2"
   darktable:iop_order_version="4">
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>places|beach</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="6"
      darktable:params="0000000000000000cdcc4c3e000080400000803f"
      darktable:multi_name=""
      darktable:blendop_params="gz11eJxjYGBgkGAAgRNODGiAEV0AJ2iwh+CRxQMA5qIZBA=="/>
     <rdf:li
      darktable:num="1"
      darktable:operation="colorbalancergb"
      darktable:enabled="1"
      darktable:modversion="5"
      darktable:params="9a99993e00000000"
      darktable:multi_name="&lt;tone&gt; &amp; more"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def darktable_sidecar(path: Path, rating: int = 2) -> Path:
    """Write :data:`DARKTABLE_SIDECAR` for the photo the sidecar ``path`` belongs to."""
    path.write_text(DARKTABLE_SIDECAR.format(rating=rating, name=path.name[:-4]))
    return path


def history(path: Path) -> list[tuple]:
    """darktable's history entries in ``path``: (tag, attributes, text) with namespace URIs,
    so equal entries compare equal whatever their prefixes and layout."""
    root = ET.parse(path).getroot()
    seq = root.find(".//{http://darktable.sf.net/}history")
    return [(li.tag, li.attrib, (li.text or "").strip())
            for li in seq.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li")]


def exiftool_tags(path: Path, *tags: str) -> dict:
    """exiftool's reading of ``path`` (-G1 group:name keys); all tags when none given."""
    out = subprocess.run(["exiftool", "-j", "-G1", "-a", *(f"-{t}" for t in tags), str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def exiv2_xmp(path: Path) -> dict[str, str]:
    """exiv2's reading of the XMP of ``path``: ``{'Xmp.xmp.Rating': '3', ...}``."""
    out = subprocess.run(["exiv2", "-px", str(path)], capture_output=True, text=True,
                         check=False).stdout  # non-zero exit when a file has no XMP
    found = {}
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4:
            found[parts[0]] = parts[3]
    return found
