"""``python -m monitor.cli``: the same as the ``modelmon`` script."""

import sys

from monitor.cli.parser import main

sys.exit(main())
