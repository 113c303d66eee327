"""A built wheel, installed into a fresh virtual environment, scores out of the box.

The fresh environment reuses the packages of the one running the tests (torch is
gigabytes), through a .pth file naming a folder of links to them, memo itself left out,
so the memo that runs is the one from the wheel. Nothing is downloaded.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import write_photo

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "memocli", "weights")


def run(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    """Run a command with nothing of ours on PYTHONPATH (the installed memo must answer)."""
    env = {**(env or os.environ), "PYTHONPATH": ""}
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False,
                            timeout=600, env=env, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def copy_sources(dest: Path) -> Path:
    """The repository's packaged files, weights linked not copied (building writes build/)."""
    dest.mkdir()
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, copy_function=os.symlink,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    return dest


def fresh_venv(path: Path) -> Path:
    """A venv without pip whose site-packages sees ours, minus memo; returns its python."""
    run(sys.executable, "-m", "venv", "--without-pip", path)
    python = path / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
                .stdout.strip())
    shared = path.parent / "shared-site-packages"
    shared.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not entry.name.startswith(("memocli", "__editable__")) and entry.suffix != ".pth":
            (shared / entry.name).symlink_to(entry)
    (site / "shared.pth").write_text(f"{shared}\n")
    return python


@pytest.mark.slow
def test_wheel_installs_and_scores_from_another_folder(tmp_path):
    source = copy_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--no-index", "-q", "-w", dist, source)
    wheel = next(dist.glob("memocli-*.whl"))
    assert wheel.stat().st_size < 100e6  # PyPI's limit for one file
    names = zipfile.ZipFile(wheel).namelist()
    assert "memocli/weights/memo-vnet-r50.pt" in names
    assert not any("r152" in n for n in names)

    python = fresh_venv(tmp_path / "venv")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "-q", wheel)
    elsewhere = tmp_path / "elsewhere"
    photo = write_photo(elsewhere / "photo.jpg", size=(96, 80))
    env = {**os.environ, "MEMO_HOME": str(tmp_path / "home"), "MEMO_DEVICE": "cpu"}
    env.pop("MEMO_WEIGHTS", None)
    memo = python.parent / "memo"
    result = run(memo, "score", photo.name, "--csv", cwd=elsewhere, env=env)
    rows = result.stdout.splitlines()
    assert rows[0].startswith("rank,path,score") and rows[1].startswith("1,photo.jpg,")
    where = run(python, "-c", "import memocli; print(memocli.__file__)", cwd=elsewhere, env=env)
    assert where.stdout.startswith(str(tmp_path / "venv"))
    models = run(memo, "models", cwd=elsewhere, env=env).stdout
    assert f"{tmp_path / 'venv'}" in models.splitlines()[0]
    assert "not installed: put memo-vnet-r152.pt into" in models


@pytest.mark.slow
def test_sdist_holds_the_default_model_only(tmp_path):
    source = copy_sources(tmp_path / "src")
    run(sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
        "b.build_sdist(sys.argv[1])", tmp_path / "dist", cwd=source)
    sdist = next((tmp_path / "dist").glob("memocli-*.tar.gz"))
    assert sdist.stat().st_size < 100e6
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(n.endswith("weights/memo-vnet-r50.pt") for n in names)
    assert not any("r152" in n for n in names)
