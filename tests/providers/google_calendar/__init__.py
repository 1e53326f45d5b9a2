"""Google Calendar: its emulator driven by Google's official auth library."""
