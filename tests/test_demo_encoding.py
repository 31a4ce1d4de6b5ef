"""Demo stage 1 on the shipped samples, cut to one frame and two QPs to stay fast."""

from __future__ import annotations

from codecnn.codec.manifest import load_manifest
from codecnn.demo.encoding import run_encode_stage


def test_encode_stage_writes_manifests_table_and_plot(tmp_path):
    printed: list[str] = []
    summary = run_encode_stage(tmp_path, frames=1, qps=(22, 37), echo=printed.append)
    assert len(summary["manifests"]) == 4
    for path in summary["manifests"]:
        seq = load_manifest(path)
        assert seq.frames == 1 and seq.slice_qps == [seq.qp]
    sizes = {load_manifest(p).source: (load_manifest(p).width, load_manifest(p).height)
             for p in summary["manifests"]}
    assert sizes == {"carphone": (176, 144), "bikes320": (320, 136)}
    rows = summary["rows"]
    for source in ("carphone", "bikes320"):
        lo, hi = (r for r in rows if r.source == source)
        assert lo.qp == 22 and hi.qp == 37
        assert lo.psnr_y > hi.psnr_y and lo.kbps > hi.kbps
    assert summary["table"] in "\n".join(printed)
    assert (tmp_path / "coded" / "rd.png").stat().st_size > 1000
    assert (tmp_path / "coded" / "rd.md").read_text().strip() == summary["table"]
