"""``python -m litevision``: the same as the ``litevision`` command."""

import sys

from litevision.cli.main import main

sys.exit(main())
