"""Runs a command and prints its peak resident set size in MiB (ru_maxrss of the child).

Usage: peak_rss.py COMMAND [ARGS...]; exits with the command's exit code.
"""

import resource
import subprocess
import sys

code = subprocess.call(sys.argv[1:])
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{peak_kib / 1024:.1f}")
sys.exit(code)
