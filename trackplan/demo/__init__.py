"""Building blocks of `trackplan generate`: parameters, random streams, the simulation, faults, landing files.

The public entry point is `trackplan.demo.generate.generate`.
"""
