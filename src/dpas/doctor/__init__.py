"""``dpas doctor``: why polling, PAS or DPAS will not engage here, and how to fix it."""
