"""Quasi-experimental estimators behind ``models.stats`` (panel DiD, matching, ITS, uplift).

Import them from ``models.stats``; this package only keeps that module small.
"""
