from fxpsim.cli import main

raise SystemExit(main())
