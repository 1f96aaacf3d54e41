"""Robots behind one small interface: simulated arms (``sim.py``) and real ones."""
