from hfmatrix.cli import main

raise SystemExit(main())
