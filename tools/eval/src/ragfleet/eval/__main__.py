from ragfleet.eval.cli import main

raise SystemExit(main())
