"""Demonstration data: the Zarr demo store, training windows, statistics and format conversion."""
