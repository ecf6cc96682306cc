"""Benchmarks: ``python -m hrm_rl.bench <what>`` prints a table and writes JSON with ``--out``.

Benchmarks are not tests: they report throughput and ratios measured in one run on the machine
at hand, and the README quotes them together with the machine they ran on.
"""
