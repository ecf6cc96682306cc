"""Puzzles and their environments: rules, generators, readers, Gymnasium and TorchRL front-ends."""
