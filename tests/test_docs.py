"""The documentation: the README's quickstart runs as written, and the MkDocs site builds with
no warnings (strict: broken links, unknown API names and bad docstrings fail)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quickstart_runs(capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S)
    assert block, "README.md has no ## Quickstart python block"
    exec(compile(block.group(1), "README.md quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "torch.Size([100, 32, 20])" in out


def test_readme_stays_short_and_speaks_of_the_software():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert not re.search(r"\bsession\b", text, re.I)


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    cmd = [mkdocs] if mkdocs else [sys.executable, "-m", "mkdocs"]
    res = subprocess.run(cmd + ["build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "index.html").stat().st_size > 10_000
