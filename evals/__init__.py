"""The eval launcher: bundled lm-eval tasks, a runner, background jobs and a code sandbox."""
