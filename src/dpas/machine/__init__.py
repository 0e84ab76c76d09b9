"""What describes the machine a run is on, read the same way by everyone above it (the doctor,
real runs, dpas's engine, the QEMU guest): the kernel and what it can do for polling
(``kernel``), a block queue's DPAS knobs (``knobs``), the NVMe queues and their interrupts
(``interrupts``), fio's JSON and its CPU lists (``fio``), and the roots they are read from
(``where``). Nothing here writes, and nothing here imports a package that runs things."""
