from meccano.cli import main

raise SystemExit(main())
