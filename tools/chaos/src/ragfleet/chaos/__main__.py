import sys

from ragfleet.chaos.cli import main

sys.exit(main())
