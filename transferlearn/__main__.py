import sys

from transferlearn.cli import main

sys.exit(main())
