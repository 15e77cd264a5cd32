"""``python -m streams.cli``: the same as ``interest-stream``."""

import sys

from streams.cli import main

sys.exit(main())
