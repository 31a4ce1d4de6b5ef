"""Research analyses behind the filter: SATD (Hadamard as in VTM, DCT), how the CTU
residual MSE correlates with QP and CU depth, and a Bayesian search of a QP/depth weighting.

Modules: satd (transforms), satd_ranking (`analyze satd`: satd_report), correlation
(`analyze correlation`: correlation_report), weights (`analyze weights`: weights_report),
ctu_data (per-CTU table from shards), outputs (JSON/PNG/tables), notes (the research notes'
table, `reproduce seed-correlation`).
Their demo stages are in codecnn.demo.stages.
"""
