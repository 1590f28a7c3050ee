import sys

from ragfleet.ops.cli import main

sys.exit(main())
