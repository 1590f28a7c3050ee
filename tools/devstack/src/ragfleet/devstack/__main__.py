import sys

from ragfleet.devstack.cli import main

sys.exit(main())
