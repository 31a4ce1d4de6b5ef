"""`codecnn demo`: the whole flow on the sample content that ships with the dependencies.

Everything the demo adds to the library lives here, and only here (with the CLI) is anything
printed: library functions return their numbers, the demo's stages say them through `echo`.

Modules: flow (`run_demo`, the order of the stages, the held-out clip and the shipped model
per codec), encoding (stage 1: VVenC or x265 + libde265, RD and CU-depth tables), stages
(extract, train, eval, correlation and weights, each one library call), overview
(summary.md/png of every model's held-out gain).
"""

from codecnn.demo.flow import run_demo

__all__ = ["run_demo"]
