import sys

try:
    from mtmct_reid.cli import main

    code = main()
except KeyboardInterrupt:  # Ctrl-C before the command line's own handling was in place
    print("mtmct-reid: interrupted", file=sys.stderr)
    code = 130
sys.exit(code)
