"""imitation: record robot demonstrations, train ACT and Diffusion Policy, run them in simulation and on real arms."""

__version__ = "0.1.0"
