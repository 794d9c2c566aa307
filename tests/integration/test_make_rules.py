"""`make rules` works from a fresh clone, without network: the domain-list-community snapshot
lives in the project (third_party/), and the generated rules/dlc.txt is byte for byte the
committed one wherever the clone lies."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"


def git(*args, cwd=REPO):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


pytestmark = [
    pytest.mark.skipif(git("rev-parse", "--git-dir").returncode != 0, reason="not a git checkout"),
    pytest.mark.skipif(not os.access(VENV / "bin" / "python", os.X_OK), reason="no runnable .venv"),
]


def test_make_rules_in_a_fresh_clone(tmp_path):
    clone = tmp_path / "a fresh clone"
    done = git("clone", "--quiet", "--no-hardlinks", str(REPO), str(clone), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (clone / "third_party" / "domain-list-community" / "LICENSE").is_file()
    # The clone uses this checkout's venv (building one would need the package index, which
    # is not what this tests); -o: that venv counts as built, whatever the clone's file dates.
    result = subprocess.run(["make", "-C", str(clone), "rules", "VENV=%s" % VENV, "-o", "%s/.installed" % VENV],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "written to rules/dlc.txt" in result.stderr
    assert git("status", "--porcelain", cwd=clone).stdout == ""          # identical to the committed file
    assert git("diff", "--quiet", "HEAD", "--", "rules/dlc.txt", cwd=clone).returncode == 0
