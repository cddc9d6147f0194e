import sys

from fe2hmm.cli import main

sys.exit(main())
