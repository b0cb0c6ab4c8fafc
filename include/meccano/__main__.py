from meccano.cli.main import main

raise SystemExit(main())
