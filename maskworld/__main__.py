import sys

from maskworld.cli import main

sys.exit(main())
