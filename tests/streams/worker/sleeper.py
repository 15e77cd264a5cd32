"""A stand-in worker for spawn tests: prints its pid, then sleeps until it is stopped."""

import time

time.sleep(600)
