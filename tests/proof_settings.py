"""Settings of the portal hosts that tests/test_two_hosts.py starts: the production settings
(read from the environment, as every host reads them), with two differences a test needs:

- a shorter queue timeout (10 s instead of 60 s), so an email whose worker was killed after
  claiming it is retried after its lease (2 x the timeout) within the test, not 2 minutes;
- static files collected once into a folder outside DATA_DIR, as a platform's build step
  puts them into the release (a host restarting with an empty DATA_DIR keeps them).
"""

import os
from pathlib import Path

from config.settings import *  # noqa: F403
from config.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "timeout": 10, "retry": 20}
STATIC_ROOT = Path(os.environ["PROOF_STATIC_ROOT"])
