"""Deployment: ONNX export, integer inference as a codec would run it, and what it costs.

    codecnn export --model zoo:NAME -o model.onnx --calib TRAIN_SHARDS --int8 --int16 \\
        --measure HELDOUT

- `to_onnx`: PyTorch → ONNX (dynamic N, H, W; planes and normalisation in the metadata) and
  the onnxruntime-vs-PyTorch check on real CTUs;
- `int8`: onnxruntime static post-training quantisation (QDQ), calibrated on shards;
- `int16`: a SADL-style int16 fixed-point model with power-of-two shifts, exact integers;
- `runtime`: the deployed files behind the model interface `codecnn eval`/`filter` drive;
- `calib`: real CTUs from shards; `measure`: per-QP gain and BD-rate of every version;
- `deploy`: the export command's library function (its click command: codecnn.cli_export).

Nothing heavy is imported here.
"""
