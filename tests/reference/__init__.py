"""Whole-array reference implementations (oracles) the tests compare the production streaming code with."""
