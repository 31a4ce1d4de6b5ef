"""Paths written into records: relative when close by, absolute otherwise."""

import os

from codecnn.io.paths import relative_within


def test_relative_within_two_levels(tmp_path):
    out = tmp_path / "out"
    report = out / "report"
    assert relative_within(out / "run" / "best.pt", report) == os.path.join("..", "run",
                                                                             "best.pt")
    assert relative_within(report / "a.png", report) == "a.png"
    deep = out / "coded" / "clip" / "vvc-ai" / "qp22"
    assert relative_within(out / "coded" / "clip" / "original.yuv", deep) == os.path.join(
        "..", "..", "original.yuv")
    # five levels up is not "close by": the absolute path is kept
    far = tmp_path / "elsewhere.yuv"
    assert relative_within(far, deep) == str(far.resolve())
    assert relative_within(far, deep, levels=5) == os.path.join("..", "..", "..", "..", "..",
                                                                "elsewhere.yuv")


def test_relative_within_never_from_the_root():
    assert relative_within("/usr/bin/env", "/tmp") == "/usr/bin/env"
