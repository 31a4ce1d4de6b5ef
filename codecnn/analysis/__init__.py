"""Research analyses behind the filter: SATD (Hadamard as in VTM, DCT), how the CTU
residual MSE correlates with QP and CU depth, and a Bayesian search of a QP/depth weighting.

Modules: satd (transforms), ranking (`analyze satd`), correlation (`analyze correlation`),
weights (`analyze weights`), ctu_data (per-CTU table from shards), report (JSON/PNG/tables).
Their demo stages are in codecnn.demo.stages.
"""
