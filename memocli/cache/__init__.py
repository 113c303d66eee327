"""The score cache: one SQLite file (via sqlite-utils), WAL mode, schema in numbered migrations.

Tables (see ``docs/scoring.md``):

* ``scores(content_hash, model, score, scored_at)``, primary key ``(content_hash, model)``:
  the raw model output for one file content under one model.
* ``files(path, content_hash, size, mtime_ns, seen_at)`` keyed by absolute path: the
  stat index, so an unchanged file is never hashed again.
* ``images(content_hash, width, height, taken_at, camera)``: what belongs to the content
  (upright size, EXIF date taken and camera), shared by every model.
* ``checkpoints(path, device, precision, engine, preprocessing, size, mtime_ns, model)``: the
  model id a checkpoint file scores under with that ``--device``, ``--precision`` and
  ``--engine`` (as asked, ``auto`` included) and preprocessing version, as of its size and
  mtime, so a cached re-scan need not hash the checkpoint or import torch.
* ``features(content_hash, model, vector)``: the model's L2-normalised pooled last-block
  features (float16 bytes), written with the score, for finding bursts.
* ``failures(content_hash, preprocessing, reason, failed_at)``: contents that could not be
  decoded, so a re-run names them without loading the model.

Modules: :mod:`.store` (the :class:`Cache` and its queries), :mod:`.migrations` (the
schema), :mod:`.connection` (opening, WAL, transactions), :mod:`.sqlite_errors` (errors as
one line), :mod:`.rows` (records and stored values). Where the file lives by default is
:mod:`memocli.folders`' business.

This package must not import torch: ``memo cache info`` and cached re-scans use it alone.
"""

from .rows import CheckpointSetup, ImageMeta, KnownContent, KnownFile
from .store import Cache

__all__ = ["Cache", "CheckpointSetup", "ImageMeta", "KnownContent", "KnownFile"]
