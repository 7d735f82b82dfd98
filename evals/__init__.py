"""Offline regression suite: lm-eval task definitions, suite files, a runner and a sandbox."""
