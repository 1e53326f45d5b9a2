"""Calendars, written once: jobs out to a technician's calendar, busy time and moves back (see protocol.py)."""
