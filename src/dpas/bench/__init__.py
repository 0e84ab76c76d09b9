"""``dpas bench``: the lab's bench.sh sweep of modes and job counts, on the simulator."""
