import sys

from mtmct_reid.cli import main

sys.exit(main())
