"""Options and helpers shared by several commands: the public face of the CLI's common parts.

Click only; heavy modules (torch) are imported by the library when something needs them.
"""

from __future__ import annotations

import click

from ..device import DEVICE_NAMES
from ..engines import ENGINES
from ..precision import PRECISIONS
from ..registry import DEFAULT_MODEL, MODELS
from ..scan import LINK_OUT, SYSTEM_FOLDER
from .progress import echo_err, progress_for_stderr


def _check_device(ctx, param, value: str) -> str:
    """Reject a misspelt device up front, even when nothing ends up needing the model."""
    if not DEVICE_NAMES.fullmatch(value):
        raise click.BadParameter(f"'{value}' is not auto, cpu, cuda, cuda:N or mps")
    return value


def device_option(f):
    """``--device``: auto (CUDA, else MPS, else CPU), or a torch device name."""
    return click.option(
        "--device", default="auto", show_default=True, envvar="MEMO_DEVICE",
        callback=_check_device,
        help="cpu, cuda, cuda:N, mps, or auto (CUDA, else Apple MPS, else CPU).",
    )(f)


def precision_option(default: str = "auto"):
    """``--precision``: the arithmetic scoring runs in (see memocli.precision.compute_dtype)."""
    return click.option(
        "--precision", type=click.Choice(PRECISIONS), default=default, show_default=True,
        envvar="MEMO_PRECISION",
        help="auto: float16 on CUDA, bfloat16 on CPUs that have it in hardware, else fp32. "
             "Scores agree with fp32 within 0.01.",
    )


def engine_option(f):
    """``--engine``: what runs the network (see memocli.engines.pick_engine)."""
    return click.option(
        "--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
        envvar="MEMO_ENGINE",
        help="auto: OpenVINO on the CPU when it is installed (about 1.4x faster there), "
             "torch on GPUs. Scores agree within 0.01.",
    )(f)


def model_option(f):
    """``-m/--model``: a registered V-Net architecture."""
    return click.option(
        "-m", "--model", "model_name", type=click.Choice(sorted(MODELS)), default=DEFAULT_MODEL,
        show_default=True, envvar="MEMO_MODEL", help="V-Net architecture (backbone).",
    )(f)


def silent_option(f):
    """``-s/--silent``: no progress bars."""
    return click.option("-s", "--silent", is_flag=True, help="No progress bars.")(f)


def batch_options(default: int | None = 32):
    """``--batch-size`` (None: per device, see memocli.inference) and ``--workers``."""

    def decorate(f):
        f = click.option("--workers", type=click.IntRange(min=0), default=None,
                         help="Image decoding processes [default: one per spare core, "
                              "max 8].")(f)
        shown = default if default is not None else "16 on a CPU, 64 on a GPU"
        return click.option("--batch-size", type=click.IntRange(min=1), default=default,
                            help=f"Images per batch [default: {shown}].")(f)

    return decorate


class WeightsType(click.ParamType):
    """``--weights``: a model name from ``memo models`` (``r152``) or a checkpoint path,
    given to the command as a :class:`~pathlib.Path`."""

    name = "NAME|CKPT"

    def convert(self, value, param, ctx):
        from ..catalog import resolve_weights
        from ..errors import MemoError

        try:
            return resolve_weights(value)
        except MemoError as e:
            self.fail(str(e), param, ctx)


WEIGHTS_HELP = ("A model name from `memo models` (r50, r152, accurate, stable) or a "
                "checkpoint file [default: $MEMO_WEIGHTS, else r50, installed with memo].")


def burst_options(f):
    """``--burst-seconds`` and ``--burst-similarity``: how photos are grouped into bursts."""
    from ..bursts import DEFAULT_SECONDS, DEFAULT_SIMILARITY

    f = click.option("--burst-similarity", type=click.FloatRange(0, 1), metavar="S",
                     default=DEFAULT_SIMILARITY, show_default=True,
                     help="Least cosine similarity of the model's features for two photos "
                          "to share a burst (without a time taken: half-way to 1).")(f)
    return click.option("--burst-seconds", type=click.FloatRange(min=0), metavar="N",
                        default=DEFAULT_SECONDS, show_default=True,
                        help="Most seconds between the times taken of two frames of a "
                             "burst.")(f)


def cache_options(f):
    """``--cache PATH`` and ``--no-cache``."""
    f = click.option("--no-cache", is_flag=True,
                     help="Use no cache: score everything, store nothing.")(f)
    return click.option(
        "--cache", "cache_path", type=click.Path(dir_okay=False), metavar="PATH",
        help="Cache database [default: $MEMO_HOME/memo.db, else memo.db in your user cache "
             "folder, e.g. ~/.cache/memo on Linux; `memo cache path` prints it].",
    )(f)


class ShardType(click.ParamType):
    """``I/N``: the I-th of N shards (1 <= I <= N), as a :class:`memocli.shard.Shard`."""

    name = "I/N"

    def convert(self, value, param, ctx):
        from ..shard import Shard

        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


def scoring_options(f):
    """Options every command that scores shares: model, cache, scan, batching, device.

    The command receives them as keyword arguments to hand to :func:`run_scoring` whole.
    """
    f = silent_option(f)
    f = click.option("--strict", is_flag=True,
                     help="Stop at the first file that cannot be scored (exit status 1); "
                          "by default such files are reported and skipped.")(f)
    f = click.option("--include-all", is_flag=True, envvar="MEMO_INCLUDE_ALL",
                     help="Also rank pictures that are not photos (icons, blank images, "
                          "screenshots, drawings, documents); by default they are counted "
                          "in the summary line and left out [env: MEMO_INCLUDE_ALL].")(f)
    f = click.option("--accept-known-failures", is_flag=True,
                     help="Exit status 0 when the only files not scored are ones that could "
                          "not be read in an earlier run (for scripts; new failures still "
                          "exit 1).")(f)
    f = click.option("--retry-failed", is_flag=True,
                     help="Try again the files that could not be read in an earlier run "
                          "(by default they are named in one line, without loading the "
                          "model).")(f)
    f = engine_option(f)
    f = precision_option()(f)
    f = device_option(f)
    f = batch_options(default=None)(f)
    f = click.option("--hidden", is_flag=True,
                     help="Also look inside hidden folders (names starting with '.').")(f)
    f = click.option("--follow-links", is_flag=True,
                     help="Follow links to folders outside PATH too (by default only links "
                          "within it; never into /proc, /sys or /dev).")(f)
    f = click.option("--rehash", is_flag=True,
                     help="Hash every file again instead of trusting its unchanged size and "
                          "modification time (for files edited in place with the time "
                          "kept, such as by exiftool -P).")(f)
    f = click.option("--shard", type=ShardType(), metavar="I/N",
                     help="Take only the I-th of N shards of the photos found, split by "
                          "their path inside PATH (one job of N; memo cache merge combines the "
                          "jobs' caches).")(f)
    f = cache_options(f)
    return click.option("-w", "--weights", type=WeightsType(), help=WEIGHTS_HELP)(f)


def open_cache(cache_path: str | None, no_cache: bool):
    """The cache ``--cache``/``--no-cache`` ask for (see :func:`cache_options`)."""
    from ..cache import Cache
    from ..folders import default_cache_path

    if cache_path and no_cache:
        raise click.UsageError("use --cache PATH or --no-cache, not both")
    return Cache(None if no_cache else (cache_path or default_cache_path()))


def run_scoring(inputs, weights, cache_path, no_cache, hidden, follow_links, rehash, shard,
                batch_size, workers,
                device, precision, engine, strict, retry_failed, accept_known_failures,
                include_all, silent, with_features=False, source=None):
    """Score ``inputs`` with the :func:`scoring_options`; says how many came from the cache.

    The returned :class:`~memocli.score.ScoreReport`'s ``source`` loads the model once for
    whatever comes next (heatmaps), if scoring did not already; given back as ``source``,
    it scores again without loading the model again. Its ``files`` are the photos alone
    unless ``include_all`` (:func:`memocli.kinds.split_photos`). ``accept_known_failures``
    is read by :func:`finish`.
    """
    from ..kinds import split_photos
    from ..score import score_paths

    with open_cache(cache_path, no_cache) as cache:
        report = score_paths(inputs, cache, weights=weights, device=device,
                             batch_size=batch_size, workers=workers, include_hidden=hidden,
                             follow_links=follow_links, rehash=rehash,
                             precision=precision, engine=engine,
                             progress=progress_for_stderr(silent),
                             with_features=with_features, shard=shard, strict=strict,
                             retry_failed=retry_failed, source=source)
    photos, set_aside = split_photos(report.files)
    if include_all:
        set_aside = {}  # ranked with the photos; the kind column says what each is
    if not silent:
        others = sum(set_aside.values())
        counted = (f"{len(photos)} photo(s) and {others} other picture(s)" if others
                   else f"{len(report.files)} photo(s)")
        echo_err(f"{counted}: {report.from_cache} from the cache, "
                 f"{report.scored_files} scored now (model {report.model_id})"
                 + _set_aside_text(set_aside) + _passed_over_text(report.passed_over))
    if not include_all:
        report.files = photos
    return report


def _set_aside_text(kinds: dict[str, int]) -> str:
    """``'; set aside: 1 icon, 1 screenshot (--include-all ranks them)'``, or ''."""
    from ..kinds import KIND_NOUNS

    if not kinds:
        return ""
    listed = ", ".join(f"{count} {KIND_NOUNS[kind][count != 1]}"
                       for kind, count in sorted(kinds.items()))
    return f"; set aside: {listed} (--include-all ranks them)"


def _passed_over_text(counts: dict[str, int]) -> str:
    """``'; 2 RAW files ranked as their JPEG; not entered: 1 link out of the folders
    (--follow-links); not photos: 1 video, 2 sidecars'``, or ''."""
    def plural(n: int, noun: str) -> str:
        return f"{n} {noun}" + "s" * (n != 1)

    text = ""
    twins = counts.get("raw twin", 0)
    if twins:
        text += f"; {plural(twins, 'RAW file')} ranked as {'their' if twins > 1 else 'its'} JPEG"
    entered = {LINK_OUT: ("link", " out of the folders (--follow-links)"),
               SYSTEM_FOLDER: ("system folder", " (/proc, /sys, /dev)")}
    kept_out = [plural(counts[kind], noun) + rest for kind, (noun, rest) in entered.items()
                if counts.get(kind)]
    if kept_out:
        text += "; not entered: " + ", ".join(kept_out)
    others = [plural(n, kind) for kind, n in sorted(counts.items())
              if kind != "raw twin" and kind not in entered]
    if others:
        text += "; not photos: " + ", ".join(others)
    return text


def diverse_options(group_by: bool = True, top: bool = True):
    """``--diverse`` and ``--trade-off`` (and ``--group-by``): which photos to show beyond
    the N best (:mod:`memocli.selection`); ``top``: the command has ``--top``."""
    from ..selection import DEFAULT_DIVERSE_LIMIT, DEFAULT_TRADE_OFF, GROUPINGS

    def decorate(f):
        if group_by:
            f = click.option("--group-by", type=click.Choice(GROUPINGS), default=None,
                             help="The best photos of each folder, day taken or kind "
                                  "(with --include-all), group after group"
                                  + ("; --top N is per group." if top else "."))(f)
        f = click.option("--trade-off", type=click.FloatRange(0, 1), default=DEFAULT_TRADE_OFF,
                         show_default=True, metavar="X",
                         help="With --diverse: weight of memorability against unlikeness "
                              "(1: rank order; lower: more variety).")(f)
        return click.option("--diverse", is_flag=True,
                            help="Pick a varied top: each next photo is the most memorable "
                                 "one that does not look like those already picked (maximal "
                                 "marginal relevance on the model's features; the first "
                                 f"--top N, else {DEFAULT_DIVERSE_LIMIT}, in that order).")(f)

    return decorate


def one_per_burst_option(f):
    """``--one-per-burst``."""
    return click.option("--one-per-burst", is_flag=True,
                        help="Keep only the most memorable photo of each burst (photos "
                             "taken seconds apart that look alike).")(f)


def finish(report, failed_heatmaps: int = 0) -> None:
    """Exit 1 (after the data is out) when any file had to be skipped.

    Files that could not be read in an earlier run count too, unless the command was given
    ``--accept-known-failures``: a library with a broken file is not in order, but a script
    may have decided to live with it.
    """
    messages = []
    if report.problems:
        messages.append(f"{len(report.problems)} file(s) skipped (reasons above); "
                        "the others were scored")
    accepted = click.get_current_context().params.get("accept_known_failures")
    if report.known_failures and not accepted:
        messages.append(f"{len(report.known_failures)} file(s) could not be read in an "
                        "earlier run (named above; --accept-known-failures exits 0)")
    if failed_heatmaps:
        messages.append(f"{failed_heatmaps} heatmap(s) failed")
    if messages:
        raise click.ClickException("; ".join(messages))
