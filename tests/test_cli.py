from conftest import assert_one_line_error, run_cli


def test_help_lists_every_stage():
    out = run_cli("--help", check=True).stdout
    for command in ("encode", "extract", "dataset", "analyze", "samples", "demo"):
        assert command in out


def test_usage_errors_are_one_line():
    proc = run_cli("encode", "x.mp4", "--qp", "32", "--config", "bad", "-o", "out")
    assert_one_line_error(proc, "codecnn encode", "--config", "bad")
    assert proc.returncode == 2
    proc = run_cli("analyze", "correlation")
    assert_one_line_error(proc, "--data")


def test_malformed_manifest_is_one_line(tmp_path):
    import json

    from codecnn.codec.manifest import CodedSequence, PictureInfo, save_manifest

    seq = CodedSequence(source="s", width=16, height=16, bit_depth=10, fps=25.0, frames=1,
                        codec="vvc", config="ai", qp=32, original="o.yuv",
                        reconstruction="r.yuv", bitstream="b.266", bitstream_bits=8,
                        pictures=[PictureInfo(0, "I", 32, 8)])
    path = save_manifest(seq, tmp_path / "manifest.json")
    data = json.loads(path.read_text())
    del data["pictures"][0]["slice_qp"]
    path.write_text(json.dumps(data))
    proc = run_cli("extract", "--manifest", path, "-o", tmp_path / "shards")
    assert_one_line_error(proc, str(path), "malformed manifest")
