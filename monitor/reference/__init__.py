"""Reference profiles: bins, build from training data, readers, save and load."""
