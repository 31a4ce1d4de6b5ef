"""`codecnn corpus`: real sources really coded, a fixed held-out set, resumable, a table."""

from __future__ import annotations

import json

import h5py
import numpy as np
from conftest import run_cli

from codecnn.corpus import HELDOUT_STILLS, corpus_sources
from codecnn.corpus.build import crop_to_multiple
from codecnn.corpus.sources import WALLPAPER_PHOTOS


def test_small_corpus_builds_resumes_and_counts(tmp_path):
    only = "microaneurysms,carphone_pristine,chelsea"
    args = ["corpus", "-o", tmp_path, "--only", only, "--qp", "37", "--no-wallpapers", "-j", "2"]
    first = run_cli(*args, check=True)
    root = tmp_path / "vvc-ai"
    assert "| microaneurysms | train | 96x96 | 1 | 1 |" in first.stdout  # 102×102 cut to 8s
    assert "| chelsea | heldout | 448x296 | 1 | 12 |" in first.stdout  # 451×300
    assert "| carphone_pristine | train | 176x144 | 32 | 128 |" in first.stdout
    record = json.loads((root / "corpus.json").read_text())
    assert {s["name"]: s["ctus"] for s in record["sources"]} == {
        "microaneurysms": {"37": 1}, "carphone_pristine": {"37": 128}, "chelsea": {"37": 12}}
    train = sorted(p.name for p in (root / "shards" / "train").glob("*.h5"))
    assert train == ["carphone_pristine_qp37.h5", "microaneurysms_qp37.h5"]
    assert [p.name for p in (root / "shards" / "heldout").glob("*.h5")] == ["chelsea_qp37.h5"]
    with h5py.File(root / "shards" / "train" / "carphone_pristine_qp37.h5") as f:
        pocs = np.unique(f["meta"]["poc"])
    assert len(pocs) == 32
    # Frames spread over the whole 120-frame clip, not the first 32: the originals differ
    # from the clip's first frames, and the last kept frame is near the end.
    coded = root / "coded"
    manifest = json.loads((coded / "carphone_pristine" / "vvc-ai" / "qp37" / "manifest.json")
                          .read_text())
    assert "lt(mod(n*32,120),32)" in " ".join(manifest["commands"]["convert"])
    # A rerun codes nothing again: the manifests keep their times.
    chelsea = coded / "chelsea" / "vvc-ai" / "qp37" / "manifest.json"
    stamp = chelsea.stat().st_mtime_ns
    again = run_cli(*args, check=True)
    assert again.stdout.splitlines()[:-1] == first.stdout.splitlines()[:-1]  # same table
    assert chelsea.stat().st_mtime_ns == stamp


def test_sources_hold_out_the_fixed_set_and_leave_out_artwork(tmp_path):
    for name in ("Path", "Kite", "Volna", "FlyingKonqui"):  # two photos, two rendered
        d = tmp_path / name / "contents" / "images"
        d.mkdir(parents=True)
        (d / "1920x1200.jpg").write_bytes(b"")
        (d / "2560x1600.jpg").write_bytes(b"")
    sources = corpus_sources(wallpaper_root=tmp_path)
    names = {s.name: s for s in sources}
    held = {s.name for s in sources if s.split == "heldout"}
    assert held == {*HELDOUT_STILLS, "bigbuckbunny"}
    assert names["bigbuckbunny"].select == "between(n,100,131)"
    assert not held & {s.name for s in sources if s.split == "train"}
    for synthetic in ("chessboard_GRAY", "phantom", "logo", "horse", "color",
                      "carphone_distorted", "motorcycle_right"):
        assert synthetic not in names
    assert names["Path"].path.endswith("2560x1600.jpg") and "Kite" in names
    assert "Volna" not in names and "FlyingKonqui" not in names
    assert not {"Volna", "FlyingKonqui"} & set(WALLPAPER_PHOTOS)
    assert not any(s.origin == "plasma-workspace-wallpapers"
                   for s in corpus_sources(wallpapers=False, wallpaper_root=tmp_path))


def test_crop_to_a_multiple_of_eight():
    assert crop_to_multiple(451, 300) == (448, 296)
    assert crop_to_multiple(2560, 1600) is None
    assert crop_to_multiple(102, 102) == (96, 96)
