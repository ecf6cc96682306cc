"""Hydra configs shipped with hrm_rl (read by ``python -m hrm_rl.train``)."""
