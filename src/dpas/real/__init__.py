"""Real runs: fio on a real device or file, with the queue's kernel knobs set per mode and
always restored. The runner decides; an Executor carries out commands and knob writes."""
