import sys

from harness.cli import process_main

sys.exit(process_main())
