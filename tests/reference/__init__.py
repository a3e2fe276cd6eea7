"""Whole-array reference implementations: the oracles the equivalence tests compare the streaming stages with.
Not used by `reelsplit run`."""
