"""The scoring pipeline: scan -> stat index -> hash -> cache lookup -> model on misses only.

1. :func:`memocli.scan.scan` finds the images (one ``stat`` each).
2. One indexed query per 500 paths finds the ones whose ``(path, size, mtime_ns)`` is
   unchanged since they were hashed: their content hash, score and metadata come from the
   cache and the file is not opened. If that is every file, torch is never imported.
3. The others are hashed (SHA-256 of the content, streamed); a hash the cache already
   scored with this model (a moved or renamed photo, a copy) needs no model either.
   Files rows are committed per batch of hashed files.
4. The model runs on the remaining contents only, batch by batch, and each batch's scores
   (with the pooled features of the same forward pass) are committed in one short
   transaction as soon as it is done: an interrupted run keeps every finished batch, and
   the next run starts where it stopped. When features are asked for (bursts), contents
   scored before the cache stored features meet the model once more.

Scores are stored raw; :func:`display_score` is what users see (see ``docs/scoring.md``);
:mod:`memocli.ranking` ranks them. This module imports torch only when step 4 has something to do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import Cache, CheckpointSetup, ImageMeta
from .cache.rows import well_formed_vectors
from .errors import Interrupted, MemoError
from .files import default_weights_path, hash_file, os_reason, printable, read_failure
from .model_id import family_of
from .registry import PREPROCESSING_VERSION
from .reporting import Progress, Skips
from .scan import CHANGED, FoundFile, scan
from .setup_key import setup_keys
from .shard import Shard

log = logging.getLogger(__name__)

HASH_BATCH = 64  # files hashed (and committed) per transaction
_IO_THREADS = 4  # hashing and header reading are I/O bound and release the GIL


def display_score(raw: float) -> float:
    """The score users see: the raw model output clipped to LaMem's [0, 1] scale."""
    return min(1.0, max(0.0, raw))


@dataclass
class ScoredFile:
    """One scored photo: where it is, what it is, and its raw model output."""

    path: str
    abspath: str
    content_hash: str
    raw_score: float
    meta: ImageMeta
    features: bytes | None = None  # float16 unit vector (score_paths(with_features=True))
    model_id: str | None = None  # the model id that gave raw_score (None: the report's)

    @property
    def score(self) -> float:
        return display_score(self.raw_score)


@dataclass
class ScoreReport:
    """Everything a ``memo score`` run found out."""

    files: list[ScoredFile]
    problems: list[tuple[str, str]]
    model_id: str
    known_failures: list[tuple[str, str]] = field(default_factory=list)  # earlier runs'
    found: int = 0  # image files found by the scan
    hashed: int = 0  # files hashed in this run (new or changed since last seen)
    scored: int = 0  # contents the model ran on in this run
    scored_files: int = 0  # files whose score came from this run's model calls
    source: ModelSource | None = None  # the model (loaded once, on first use)
    passed_over: dict[str, int] = field(default_factory=dict)  # ScanResult.passed_over

    @property
    def from_cache(self) -> int:
        """Files whose score was already in the cache."""
        return len(self.files) - self.scored_files


class ModelSource:
    """The checkpoint to score with, on a device, in a precision, with an engine.

    Its model id comes from the cache when the checkpoint file is unchanged since it was
    last loaded with the same ``device``, ``precision`` and ``engine`` on a machine where
    they resolve alike (:func:`memocli.setup_key.setup_keys`; no hashing, no torch), or
    else from its converted network (:func:`memocli.ov_scorer.converted_model_id`); the
    :class:`~memocli.predictor.Predictor` itself is built only on :meth:`load`. Once the
    run is over (``cache`` None: it may be closed) a load remembers nothing.
    """

    def __init__(self, weights: str | os.PathLike, cache: Cache | None, device: str = "auto",
                 precision: str = "auto", engine: str = "auto"):
        self.path = Path(weights)
        self.cache = cache
        self.device_name = device
        self.precision = precision
        self.engine = engine
        self.keep_engines = cache is not None and cache.path is not None  # not --no-cache
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise MemoError(f"{self.path}: cannot read checkpoint: {os_reason(e)}") from None
        self.setup = CheckpointSetup(os.path.abspath(self.path),
                                     *setup_keys(device, precision, engine),
                                     PREPROCESSING_VERSION, st.st_size, st.st_mtime_ns)
        self.model_id = cache.checkpoint_model(self.setup)
        if self.model_id is None and self.keep_engines:  # a new cache: the engines may know
            from .ov_scorer import converted_model_id

            self.model_id = converted_model_id(self.path, device, precision, engine)
            if self.model_id is not None:
                cache.remember_checkpoint(self.setup, self.model_id)
        self._predictor: Any = None
        self._scorer: Any = None
        if self.model_id is None:
            self.load()

    def scorer(self):
        """The remembered id's converted network if intact (:mod:`memocli.ov_scorer`, no
        torch); else :meth:`load`'s Predictor."""
        if self.keep_engines and not self._predictor:
            from .ov_scorer import OpenVINOScorer

            self._scorer = self._scorer or OpenVINOScorer.for_model(self.model_id, self.path)
        return self._scorer if self._scorer is not None else self.load()

    def load(self):
        """The :class:`~memocli.predictor.Predictor` (loaded once; imports torch)."""
        if self._predictor is None:
            from .ensemble import load_predictor

            predictor = load_predictor(self.path, self.device_name, self.precision, self.engine,
                                       keep_engines=self.keep_engines)
            remembered, self.model_id = self.model_id, predictor.model_id
            if self.cache is not None:
                self.cache.remember_checkpoint(self.setup, self.model_id)
            if remembered is not None and family_of(remembered) != family_of(self.model_id):
                raise MemoError(f"{self.path}: checkpoint changed while memo was reading it "
                                f"(model {remembered}, now {self.model_id}); run again")
            if remembered != self.model_id:  # the same weights, computed otherwise here
                log.info("model %s, not %s as remembered", self.model_id, remembered)
            self._predictor = predictor
        return self._predictor

    @property
    def any_variant(self) -> bool:
        """Whether a score of another variant of this model (:mod:`memocli.model_id`)
        serves where this one has none: unless a precision was named, as every variant
        agrees within the precision budget (``docs/scoring.md``)."""
        return self.precision == "auto"


@dataclass
class _Entry:
    found: FoundFile
    content_hash: str | None = None
    score: float | None = None
    meta: ImageMeta | None = None
    features: bytes | None = None
    failed: bool = False
    model: str | None = None  # the model id whose score ``score`` is

    @property
    def undescribed(self) -> bool:
        """No header facts yet, or none of its kind (a cache from before kinds)."""
        return self.meta is None or self.meta.kind is None


def _read_features(cache: Cache, entries: list[_Entry], source: ModelSource,
                   progress: Progress) -> None:
    """Give each entry its stored feature vector. A malformed one (another length than the
    model's, from a damaged cache) is left out with a warning: the model computes it again."""
    good, problems = well_formed_vectors(
        cache.features([e.content_hash for e in entries if not e.failed],
                       source.model_id, source.any_variant))
    for e in entries:
        e.features = good.get(e.content_hash)
        if e.content_hash in problems:
            progress.echo(f"warning: {printable(e.found.path)}: malformed feature vector in "
                          f"the cache ({problems[e.content_hash]}); computing it again")


def _hash_stage(cache: Cache, entries: list[_Entry], todo: list[_Entry], source: ModelSource,
                skips: Skips, progress: Progress, pool: ThreadPoolExecutor) -> int:
    """Hash ``todo`` and describe contents without metadata, committing per batch."""
    from .exif import read_image_meta

    hashed = 0
    need_meta_only = [e for e in entries if e.content_hash and e.undescribed]
    work = todo + need_meta_only
    with progress.stage(len(work), "hashing") as advance:
        for start in range(0, len(work), HASH_BATCH):
            batch = work[start:start + HASH_BATCH]
            to_hash = [e for e in batch if e.content_hash is None]
            outcomes = pool.map(_try_hash, to_hash)
            for entry, (digest, reason) in zip(to_hash, outcomes, strict=True):
                if digest is not None:
                    entry.content_hash = digest
                    hashed += 1
                else:
                    entry.failed = True
                    skips.add(entry.found.path, reason)
            ok = [e for e in to_hash if not e.failed]
            known = cache.lookup_contents([e.content_hash for e in ok], source.model_id,
                                          source.any_variant)
            for e in ok:
                content = known.get(e.content_hash)
                if content is not None:
                    e.score, e.meta, e.model = content.score, content.meta, content.model
            describe = {e.content_hash: e for e in batch if not e.failed and e.undescribed}
            paths = [e.found.path for e in describe.values()]
            metas = dict(zip(describe, pool.map(read_image_meta, paths), strict=True))
            for e in batch:
                if not e.failed and e.undescribed:
                    e.meta = metas[e.content_hash]
            cache.record_files(
                [(e.found.abspath, e.content_hash, e.found.size, e.found.mtime_ns) for e in ok],
                metas,
            )
            advance(len(batch))
    return hashed


def _try_hash(entry: _Entry) -> tuple[str | None, str | None]:
    """``(digest, None)``, or ``(None, reason)`` when the file cannot be read."""
    try:
        return hash_file(entry.found.path), None
    except OSError as e:
        return None, read_failure(e)


def _known_failures(cache: Cache, entries: list[_Entry], skips: Skips) -> None:
    """Mark the contents without a score that could not be decoded in an earlier run as
    failed, without the model."""
    waiting = [e for e in entries if not e.failed and e.score is None]
    reasons = cache.failures([e.content_hash for e in waiting], PREPROCESSING_VERSION)
    for e in waiting:
        if e.content_hash in reasons:
            e.failed = True
            skips.add_known(e.found.path, reasons[e.content_hash])
    skips.say_known()


def _model_stage(cache: Cache, source: ModelSource, entries: list[_Entry],
                 skips: Skips, progress: Progress, batch_size: int | None,
                 workers: int | None, with_features: bool = False) -> tuple[int, int]:
    """Run the model on contents without a score (or features); commit batch by batch."""
    by_hash: dict[str, list[_Entry]] = {}
    for e in entries:
        if not e.failed and (e.score is None or with_features and e.features is None):
            by_hash.setdefault(e.content_hash, []).append(e)
    if not by_hash:
        return 0, 0
    predictor = source.scorer()
    hashes = list(by_hash)
    paths = [Path(by_hash[h][0].found.path) for h in hashes]
    scored = scored_files = 0
    try:
        with progress.stage(len(paths), "scoring") as advance:
            for batch in predictor.iter_predictions(paths, batch_size, workers):
                batch.refuse(lambda i: by_hash[hashes[i]][0].found.changed(), CHANGED)
                done = [hashes[i] for i in batch.indices]
                results = list(zip(done, batch.scores, strict=True))
                vectors = list(zip(done, batch.features, strict=True))
                cache.record_scores(source.model_id, results, vectors)
                for (h, score), (_, vector) in zip(results, vectors, strict=True):
                    for e in by_hash[h]:
                        e.score, e.features, e.model = score, vector, source.model_id
                        scored_files += 1
                scored += len(results)
                cache.record_failures(PREPROCESSING_VERSION, [
                    (hashes[i], reason) for i, reason in batch.failures if reason != CHANGED])
                for i, reason in batch.failures:
                    for e in by_hash[hashes[i]]:
                        e.failed = True
                        skips.add(e.found.path, reason)
                advance(len(batch.indices) + len(batch.failures))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: the {scored} new score(s) so far are saved; "
                          "run the same command again to continue") from None
    return scored, scored_files


def score_paths(
    inputs: Iterable[str | os.PathLike],
    cache: Cache,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    precision: str = "auto",
    engine: str = "auto",
    include_hidden: bool = False,
    follow_links: bool = False,
    rehash: bool = False,
    progress: Progress | None = None,
    with_features: bool = False,
    shard: Shard | None = None,
    strict: bool = False,
    retry_failed: bool = False,
    source: ModelSource | None = None,
) -> ScoreReport:
    """Score every image under ``inputs``, using and filling ``cache``.

    Args:
        inputs: image files and folders (searched recursively).
        cache: the score cache (``Cache(None)`` for a throw-away one).
        weights: memo checkpoint; default :func:`memocli.files.default_weights_path`.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: images per model batch and committed transaction (None: per device,
            :func:`memocli.inference.default_batch_size`).
        workers: image decoding processes (None: automatic).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``
            (:func:`memocli.precision.compute_dtype`); with ``auto``, a score another
            variant of the model made serves (:attr:`ModelSource.any_variant`).
        engine: ``auto``, ``torch`` or ``openvino`` (:func:`memocli.engines.pick_engine`).
        include_hidden: also look inside hidden folders.
        follow_links: follow links to folders outside ``inputs`` (:func:`~memocli.scan.scan`).
        rehash: hash every file, trusting no unchanged size and mtime (``exiftool -P``).
        progress: progress bars and problem lines; silent when None.
        with_features: also give each file its feature vector (for bursts); contents
            scored before features were stored meet the model once more to get one.
        shard: score only this shard of the files found (:mod:`memocli.shard`).
        strict: stop with a :class:`MemoError` at the first file that cannot be scored
            (scores saved until then stay saved).
        retry_failed: give the model the contents that could not be decoded in an earlier
            run; by default they are reported (``known_failures``) without it.
        source: the :class:`ModelSource` of an earlier call with the same weights, device,
            precision and engine, so its loaded model serves again (``memo watch``).

    Returns:
        A :class:`ScoreReport`; files that could not be read or decoded are in its
        ``problems`` (and were reported through ``progress.echo`` as they happened), those
        that could not be decoded in an earlier run in ``known_failures`` (one line).

    Raises:
        MemoError: no images found, an unusable checkpoint or cache, or (``strict``) a
            file that cannot be scored.
    """
    progress = progress or Progress()
    inputs = list(inputs)
    found = scan(inputs, include_hidden=include_hidden, follow_links=follow_links)
    if not found.files:
        where = ", ".join(printable(os.fspath(p)) for p in inputs)
        raise MemoError(f"no images found in {where}" + "".join(
            f"; {printable(p)}: {r}" for p, r in found.problems[:3]))
    skips = Skips(progress, strict)
    for path, reason in found.problems:
        skips.add(path, reason)
    mine = shard.select(found.files) if shard else found.files
    if shard:
        progress.echo(f"shard {shard}: {len(mine)} of the {len(found.files)} photo(s) found")
    log.info("found %d photo(s) in %s; passed over: %s", len(found.files),
             ", ".join(os.fspath(p) for p in inputs), dict(found.passed_over) or "nothing")
    if source is None:
        source = ModelSource(weights or default_weights_path(), cache, device, precision,
                             engine)
    else:
        source.cache = cache
    log.info("model %s (%s); cache %s", source.model_id, source.path,
             cache.path or "none (--no-cache)")
    entries = [_Entry(f) for f in mine]
    known = {} if rehash else cache.lookup_paths([f.abspath for f in mine], source.model_id,
                                                 source.any_variant)
    todo = []
    for e in entries:
        k = known.get(e.found.abspath)
        if k is not None and k.size == e.found.size and k.mtime_ns == e.found.mtime_ns:
            e.content_hash, e.score, e.meta, e.model = k.content_hash, k.score, k.meta, k.model
        else:
            todo.append(e)
    hashed = 0
    if todo or any(e.undescribed for e in entries):
        with ThreadPoolExecutor(_IO_THREADS) as pool:
            hashed = _hash_stage(cache, entries, todo, source, skips, progress, pool)
    if with_features:
        _read_features(cache, entries, source, progress)
    if retry_failed:
        cache.forget_failures([e.content_hash for e in entries
                               if not e.failed and e.score is None])
    else:
        _known_failures(cache, entries, skips)
    scored, scored_files = _model_stage(cache, source, entries, skips, progress,
                                        batch_size, workers, with_features)
    files = [
        ScoredFile(e.found.path, e.found.abspath, e.content_hash, e.score,
                   e.meta or ImageMeta(), e.features, e.model)
        for e in entries if not e.failed and e.score is not None
    ]
    source.cache = None  # the caller may close it; a later load() only needs the file
    return ScoreReport(files=files, problems=skips.items, known_failures=skips.known,
                       model_id=source.model_id,
                       found=len(entries), hashed=hashed, scored=scored,
                       scored_files=scored_files, source=source,
                       passed_over=dict(found.passed_over))
