"""notebooks/investigate.ipynb runs headless, top to bottom, without a cell error."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "investigate.ipynb"


def execute(env_out, monkeypatch, wormsign_bin) -> nbformat.NotebookNode:
    if env_out is None:
        monkeypatch.delenv("WORMSIGN_OUT", raising=False)
    else:
        monkeypatch.setenv("WORMSIGN_OUT", str(env_out))
    monkeypatch.setenv("WORMSIGN_BIN", str(wormsign_bin))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # raises CellExecutionError (with the cell and traceback) if any cell errors
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return nb


def text_of(nb) -> str:
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append(o["text"])
            elif "data" in o:
                parts.append(o["data"].get("text/plain", ""))
    return "\n".join(parts)


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the notebook's outputs before committing"


def test_runs_on_sample_analysis(sample_out, monkeypatch, wormsign_bin):
    nb = execute(sample_out, monkeypatch, wormsign_bin)
    out = text_of(nb)
    assert f"analysis: {sample_out}" in out
    assert "running:" not in out, "WORMSIGN_OUT was given: the notebook must not re-run the analysis"
    # the propagation tree from the external attacker down through patient zero
    assert "185.220.101.47 (external_attacker)" in out
    assert "└─ 10.164.1.8" in out
    # the C&C names, and the evidence join
    assert "t.awcna.com" in out and "down.ackng.com" in out
    assert "65 hosts looked up C&C names" in out
    assert "65 edges joined to their session" in out
    # the what-if cell: detection again from Python with a stricter scan rule
    assert "scan_fanout alerts:" in out and "with fanout_threshold 50" in out
    assert images(nb) >= 4  # timeline, fan-out, tree, C&C lookups


def test_runs_readme_command_without_wormsign_out(monkeypatch, wormsign_bin):
    nb = execute(None, monkeypatch, wormsign_bin)
    out = text_of(nb)
    assert "running:" in out and "--honeypot 10.200.0.99 --allowlist 10.164.1.13" in out
    assert "└─ 10.164.1.8" in out
