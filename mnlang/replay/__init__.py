"""Replay: re-execute a recorded run offline against a program, and find where it diverges.

`recording` reads a run (and its children) from a journal or an archive file; `answers`
answers its calls, replies, now() and uuid() from that recording; `engine` drives the
re-execution on a throwaway in-memory journal and compares the two trajectories, fiber by
fiber, reporting the first divergence in terms of the workflow's statements.
"""
