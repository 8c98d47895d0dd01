from fxpsim.cli import entry

entry()
