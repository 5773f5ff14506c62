"""`python -m mlbot` is `mlbot`."""
import sys

from mlbot.cli import main

sys.exit(main())
