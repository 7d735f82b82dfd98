"""``python -m forgetwatch``: the same as the ``forgetwatch`` command."""

import sys

from forgetwatch.cli.main import main

sys.exit(main())
