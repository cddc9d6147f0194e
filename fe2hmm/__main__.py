from fe2hmm.cli import main
import sys

sys.exit(main())
