"""On-demand fuzzing harnesses (``make fuzz``); not collected as tests."""
