
import sys

from training.commands import main

sys.exit(main())
