import sys

from harness import interrupts
from harness.cli import main

interrupts.install()  # this process only: a test calling main() keeps its own SIGTERM
sys.exit(main())
