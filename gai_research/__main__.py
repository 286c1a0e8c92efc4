from gai_research.cli import main

raise SystemExit(main())
