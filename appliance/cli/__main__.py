"""`python -m appliance.cli`: the same entry point as the `zatca-appliance` script."""

import sys

from appliance.cli import main

sys.exit(main())
