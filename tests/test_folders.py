"""Where memo keeps its files: $MEMO_HOME, the platform's folders, an earlier memo's folder."""

import sys

import pytest

from memocli.folders import default_cache_path, kept_folder, user_weights_dir


def test_memo_home_holds_the_cache_and_the_models(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMO_HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / "memo.db"
    assert user_weights_dir() == tmp_path / "home" / "weights"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's folders")
def test_linux_folders_are_those_earlier_memo_used(monkeypatch, tmp_path):
    monkeypatch.delenv("MEMO_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_cache_path() == tmp_path / "user" / ".cache" / "memo" / "memo.db"
    assert user_weights_dir() == tmp_path / "user" / ".local" / "share" / "memo" / "weights"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert user_weights_dir() == tmp_path / "data" / "memo" / "weights"


def test_an_earlier_memos_folder_stays_in_use_until_the_platform_folder_has_the_files(
        tmp_path):
    platform, older = tmp_path / "Library" / "Caches" / "memo", tmp_path / ".cache" / "memo"
    assert kept_folder(platform, older, "memo.db") == platform  # a new user
    older.mkdir(parents=True)
    (older / "memo.db").write_bytes(b"")
    assert kept_folder(platform, older, "memo.db") == older  # an upgrade: nothing moves
    platform.mkdir(parents=True)
    assert kept_folder(platform, older, "memo.db") == older  # an empty folder is not a cache
    (platform / "memo.db").write_bytes(b"")
    assert kept_folder(platform, older, "memo.db") == platform  # the user moved it
