"""fxpsim: bit-exact fixed-point DNN accelerator simulator (cycles, energy, accuracy)."""

__version__ = "0.1.0"
