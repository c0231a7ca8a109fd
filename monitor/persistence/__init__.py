"""Persistence: the checkpoint file format and the store that saves and restores state."""
