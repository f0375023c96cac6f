"""The one-line user error names the error the user must act on, not the one it replaced."""

from __future__ import annotations

import pytest

from symlit.atomic import DirectoryLock
from symlit.config import run_cli


def test_a_busy_run_directory_is_reported_by_the_lock_message_not_the_os_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with DirectoryLock(tmp_path, "symlit-train run"):  # flock conflicts across open files, also in one process

        def second_run(_cfg):
            with DirectoryLock(tmp_path, "symlit-train run"):
                pass

        with pytest.raises(SystemExit) as info:
            run_cli("symlit-train", second_run, None)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"symlit-train: error: {tmp_path} is in use by another symlit-train run (pid ")
    assert "Errno" not in err
