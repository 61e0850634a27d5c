"""The kernel model: per-CPU state derived from events (guest runs, irqs-off windows,
RCU quiescent states, tick due times). Analyzers read these; they never parse events."""
