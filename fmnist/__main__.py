"""`python -m fmnist`: the same command as the `fmnist` console script."""
import sys

from .cli import main

sys.exit(main())
