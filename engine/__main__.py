"""`python -m engine ...` is the `rank-engine` command line."""

import sys

from tools.cli import main

sys.exit(main())
