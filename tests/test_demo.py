"""The whole demo chain (encode → extract → train → eval → analyze) on one frame per source.

Small on purpose: it checks that the stages fit together as `make demo` runs them, not how
much a real training gains.
"""

from __future__ import annotations

import json

import h5py
import pytest

from codecnn.demo import run_demo


def _check_common(out, results):
    manifests = results["encode"]["manifests"]
    assert len(manifests) == 12  # 3 sources × 4 QPs
    assert results["extract"]["patches"] > 0
    assert sorted(results["extract"]["patches_per_qp"]) == [22, 27, 32, 37]
    assert (out / "run" / "last.pt").is_file()
    report = json.loads((out / "report" / "report.json").read_text())
    sequences = {r["source"] for r in report["results"]}
    assert sequences == {"bigbuckbunny"}  # evaluated on the held-out clip only
    assert (out / "report" / "report.md").is_file()
    # the shipped model is evaluated on the same held-out clip, and one summary shows both
    summary = (out / "summary.md").read_text()
    assert "demo run" in summary and (out / "summary.png").is_file()
    if "zoo" in results:
        zoo = json.loads((out / "report_zoo" / "report.json").read_text())
        assert {r["source"] for r in zoo["results"]} == {"bigbuckbunny"}
        assert "(shipped)" in summary
    assert (out / "analysis" / "correlation.json").is_file()


def test_demo_vvc_chain(tmp_path):
    printed: list[str] = []
    results = run_demo(tmp_path, frames=1, steps=2, echo=printed.append)
    _check_common(tmp_path, results)
    text = "\n".join(printed)
    assert "report.md" in text and "== done" in text
    for shard in results["extract"]["shards"]:
        with h5py.File(shard) as f:
            assert not f.attrs["has_depth"] and "depth" not in f


@pytest.mark.slow
def test_demo_hevc_chain_has_real_depth(tmp_path):
    results = run_demo(tmp_path, codec="hevc", frames=1, steps=2, echo=lambda *_: None)
    _check_common(tmp_path, results)
    for shard in results["extract"]["shards"]:
        with h5py.File(shard) as f:
            assert f.attrs["has_depth"] and f["depth"][:].max() > 0
    assert results["weights"]["closed_form"]
