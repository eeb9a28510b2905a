from hfmatrix.commands import main

raise SystemExit(main())
