"""``python -m progreid`` (and ``torchrun -m progreid``): the same as the ``progreid`` command."""

import sys

from progreid.cli import main

sys.exit(main())
