"""Writers of photos in the formats memo reads beyond Pillow's: HEIC (pillow-heif) and DNG
(tifffile), for tests and benchmarks. Libraries are imported when a writer is called."""

import io

import numpy as np
from PIL import Image

RED, GREEN = (200, 30, 30), (30, 180, 60)


def exif_bytes(orientation=1, make="Apple", model="iPhone 15", taken="2024:05:06 07:08:09"):
    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x0110] = orientation, make, model
    exif.get_ifd(0x8769)[0x9003] = taken
    return exif.tobytes()


def write_heic(path, size=(64, 48), color=GREEN, orientation=1, image=None):
    """A HEIC as an iPhone writes it: pixels stored sideways, EXIF saying how to turn them
    (``image``, or a ``color`` one with a dark left edge to see turns by)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    path.parent.mkdir(parents=True, exist_ok=True)
    if image is None:
        image = Image.new("RGB", size, color)
        image.paste((0, 0, 0), (0, 0, size[0] // 4, size[1]))
    image.save(path, format="HEIF", exif=exif_bytes(orientation), quality=90)
    return path


def bayer(width=64, height=48) -> np.ndarray:
    """An RGGB mosaic of a left-to-right ramp, 12-bit."""
    ramp = np.linspace(200, 3000, width, dtype=np.float32)[None, :].repeat(height, 0)
    mosaic = ramp.astype(np.uint16)
    mosaic[1::2, 1::2] //= 3
    return mosaic


def write_dng(path, preview: str | None = None, orientation=6, sensor=(64, 48),
              preview_image=None):
    """A valid DNG (written with tifffile): CFA sensor data of size ``sensor``, turned right
    by its Orientation tag, with an embedded preview (``'jpeg'``, ``'bitmap'``: a red 32x24
    one, or ``preview_image``) or none.

    With a preview, IFD0 holds it (NewSubFileType 1) and a SubIFD the sensor data, as
    cameras and Adobe's converter lay DNGs out.
    """
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    mosaic = bayer(*sensor)
    shown = preview_image or Image.new("RGB", (32, 24), RED)
    dng = [(50706, "B", 4, (1, 4, 0, 0), True), (50707, "B", 4, (1, 1, 0, 0), True),
           (50708, "s", 0, "Test Camera", True), (271, "s", 0, "Canon", True),
           (272, "s", 0, "Canon EOS R5", True), (274, "H", 1, orientation, True),
           (306, "s", 0, "2023:01:02 03:04:05", True)]
    cfa = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True),
           (50717, "I", 1, 4095, True)]
    with tifffile.TiffWriter(path) as tif:
        if preview is None:
            tif.write(mosaic, photometric=32803, subfiletype=0, extratags=dng + cfa)
            return path
        if preview == "jpeg":
            buffer = io.BytesIO()
            shown.save(buffer, "JPEG", quality=90)
            # tifffile writes already-compressed strips as they are, but asks for a JPEG
            # codec (imagecodecs) first: an identity one will do for bytes that are JPEG.
            tifffile.TIFF.COMPRESSORS._codecs.setdefault(7, lambda data, *a, **k: data)
            tif.write(iter([buffer.getvalue()]), shape=(shown.height, shown.width, 3),
                      dtype="uint8", rowsperstrip=shown.height,
                      photometric="rgb", compression=7, subfiletype=1, subifds=1,
                      extratags=dng)
        else:
            tif.write(np.asarray(shown), photometric="rgb", subfiletype=1, subifds=1,
                      extratags=dng)
        tif.write(mosaic, photometric=32803, subfiletype=0, extratags=cfa)
    return path


def write_heic_declaring_1x1(path, size=(640, 480)):
    """A HEIC (a JPEG saved with pillow-heif) whose ``ispe`` box then says 1x1 pixels: libheif
    refuses it with a RuntimeError ("Security limit exceeded")."""
    import struct

    import pillow_heif

    pillow_heif.register_heif_opener()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.effect_noise(size, 50).convert("RGB").save(buffer, "JPEG")
    Image.open(buffer).save(path, format="HEIF")
    data = bytearray(path.read_bytes())
    at = data.index(b"ispe") + 8  # after the box's tag, version and flags
    data[at:at + 8] = struct.pack(">II", 1, 1)
    path.write_bytes(bytes(data))
    return path


def write_avif_without_its_image(path, size=(64, 48)):
    """AVIF bytes whose primary item (``pitm``) names an item the file lacks, under any name
    (``x.jpg`` too): Pillow's AVIF plugin raises a RuntimeError on opening it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, format="AVIF")
    data = bytearray(buffer.getvalue())
    at = data.index(b"pitm") + 8  # after the box's tag, version and flags: the item id
    data[at:at + 2] = (99).to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path
