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
