try:
    from fxpsim.cli import entry
except KeyboardInterrupt:  # Ctrl-C while Python was still loading fxpsim: no traceback
    import sys

    sys.stderr.write("fxpsim: interrupted; no report was written\n")
    raise SystemExit(130) from None

entry()
