"""Learning algorithms that train the models of :mod:`hrm_rl.models` on the environments of
:mod:`hrm_rl.envs`."""
