"""``python -m kvmtrace.cli``: the same as the ``kvmtrace`` command."""
from .main import main

main()
