"""``memo batch``: score a library on a Ray cluster (or one machine), Parquet out."""

from __future__ import annotations

import click

from .options import (
    WEIGHTS_HELP,
    WeightsType,
    device_option,
    echo_err,
    engine_option,
    precision_option,
    silent_option,
)

INSTALL_HINT = "memo batch needs Ray Data, pyarrow and polars: pip install 'memocli[ray]'"


@click.command()
@click.argument("source")
@click.option("--out", "dest", required=True, metavar="DEST",
              help="Folder (local or a URI such as s3://bucket/scores) for the Parquet "
                   "files; a re-run adds only what it lacks.")
@click.option("-w", "--weights", type=WeightsType(), help=WEIGHTS_HELP)
@device_option
@precision_option()
@engine_option
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Photos per model batch [default: 16 on a CPU, 64 with GPUs].")
@click.option("--actors", type=click.IntRange(min=1), default=None,
              help="Scoring actors, each with its own model [default: one per GPU of the "
                   "cluster, else 1].")
@click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=None,
              help="GPUs each actor reserves [default: 1 if the cluster has GPUs, else 0].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads per actor on a CPU [default: the cluster's CPUs / actors].")
@click.option("--rows-per-file", type=click.IntRange(min=1), default=10_000,
              show_default=True,
              help="Least rows per Parquet file (an interrupted run redoes at most this "
                   "many photos per writer).")
@click.option("--rank", is_flag=True,
              help="Also write DEST/ranked/: every scored photo of this model (kind "
                   "photo) with rank and percentile columns (a global sort on the cluster).")
@click.option("--address", default=None, envvar="RAY_ADDRESS",
              help="Ray cluster to join [default: $RAY_ADDRESS, else a local Ray].")
@click.option("--hidden", is_flag=True,
              help="Also look inside hidden folders (names starting with '.').")
@silent_option
def batch(source, dest, weights, device, precision, engine, batch_size, actors,
          gpus_per_actor, threads, rows_per_file, rank, address, hidden, silent):
    """Score SOURCE's photos with Ray Data and write Parquet files to DEST.

    SOURCE is a folder, a glob ('/archive/**/*.jpg'), a URI (s3://, gs://, ...) or a
    manifest (.parquet or .csv with a 'path' column). One row per photo: sha256, path,
    size, mtime_ns, score, raw_score, model_id, width, height, taken_at, camera, kind,
    error.
    A photo that cannot be read is a row with its error; the exit status is then 1.
    Run again to score only what DEST lacks for this model. `memo cache merge DEST`
    brings the scores back to `memo export`, `memo report` and bursts.

    \b
    Examples:
      memo batch ~/Photos --out scores/
      memo batch manifest.parquet --out s3://bucket/scores --rank
      ray job submit --working-dir . -- memo batch s3://bucket/photos --out s3://bucket/scores
    """
    try:
        import polars  # noqa: F401  (Ray Data's joins)
        import pyarrow  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise click.ClickException(INSTALL_HINT) from None
    import logging

    from ray.data import DataContext

    from ..batch import ScoringSetup, run_batch
    from ..files import default_weights_path

    DataContext.get_current().enable_progress_bars = not silent
    if silent:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    resources, cluster_threads = _resources(address, batch_size, actors, gpus_per_actor,
                                            rows_per_file)
    report = run_batch(
        source, dest, weights or default_weights_path(),
        ScoringSetup(str(weights or "the default model"), device, precision, engine,
                     threads or cluster_threads),
        resources, rank=rank, address=address, include_hidden=hidden,
        echo=lambda message: silent or echo_err(message))
    for path, error in report.error_examples:
        echo_err(f"skipped {path}: {error}")
    if not silent:
        echo_err(f"{report.written} photo(s) written to {dest} ({report.errors} with an "
                 f"error; {report.already} row(s) were already there) with model "
                 f"{report.model_id}" + (f"; ranked in {report.ranked}" if rank else ""))
    if report.errors or report.problems:
        raise click.ClickException(f"{report.errors + len(report.problems)} photo(s) could "
                                   "not be scored (reasons above); the others were")


def _resources(address, batch_size, actors, gpus_per_actor, rows_per_file):
    """The actors' :class:`~memocli.batch.Resources` and torch threads per CPU actor, with
    defaults that depend on the cluster (joined here, before anything is built)."""
    import ray

    from ..batch import Resources, _connect

    _connect(address)
    cluster = ray.cluster_resources()
    gpus = gpus_per_actor if gpus_per_actor is not None else (1 if cluster.get("GPU") else 0)
    actors = actors or (max(1, int(cluster.get("GPU", 0) / gpus)) if gpus else 1)
    resources = Resources(actors=actors, gpus_per_actor=gpus, cpus_per_actor=1,
                          batch_size=batch_size or (64 if gpus else 16),
                          rows_per_file=rows_per_file)
    return resources, max(1, int(cluster.get("CPU", 1)) // actors)


COMMANDS = [batch]
