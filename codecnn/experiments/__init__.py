"""Experiment tools on top of training: Bayesian hyper-parameter sweeps (`codecnn sweep`) and
a look inside a trained network through forward hooks (`codecnn inspect`)."""
