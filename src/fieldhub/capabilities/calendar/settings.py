"""A calendar connection's settings, exactly the guide's, kept in Connection.settings["calendar"]."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

DIRECTIONS = {"import": "One-way import", "export": "One-way export", "two_way": "Two-way"}
INTERVALS = (5, 15, 30, 60)
REMINDERS = {"": "None", "10": "10 minutes", "30": "30 minutes", "60": "1 hour", "1440": "1 day"}
TOGGLES = ("auto_sync", "import_events", "export_jobs", "export_estimates", "block_time_slots", "show_job_details")


@dataclass
class CalendarSettings:
    calendar_id: str = ""  # the connection's calendar ("" until one is picked)
    calendar_name: str = ""
    direction: str = "two_way"
    auto_sync: bool = True
    interval_minutes: int = 15
    import_events: bool = True
    export_jobs: bool = True
    export_estimates: bool = False
    block_time_slots: bool = True
    show_job_details: bool = False
    reminder_minutes: int | None = 30
    # technician (user id, as text) -> calendar id, when technicians have calendars of their own
    technician_calendars: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, connection: Any) -> CalendarSettings:
        stored = dict((connection.settings or {}).get("calendar") or {})
        known = {f.name for f in fields(cls)}
        found = cls(**{k: v for k, v in stored.items() if k in known})
        # Auto Sync is the connection's own switch (the sync dashboard's too): one value, read from there.
        found.auto_sync = bool(getattr(connection, "auto_sync", found.auto_sync))
        return found

    def save(self, connection: Any) -> None:
        # A new dict: the JSON column is not mutation-tracked.
        connection.settings = {**(connection.settings or {}), "calendar": asdict(self)}

    @property
    def exports(self) -> bool:
        return self.export_jobs and self.direction in ("export", "two_way")

    @property
    def imports(self) -> bool:
        return self.import_events and self.direction in ("import", "two_way")

    @property
    def two_way(self) -> bool:
        return self.direction == "two_way"

    def calendar_for(self, technician_ids: list[int]) -> str:
        """The first assigned technician's own calendar, else the connection's."""
        for tech in technician_ids:
            own = self.technician_calendars.get(str(tech))
            if own:
                return own
        return self.calendar_id or "primary"

    def update(self, form: dict[str, str]) -> dict[str, str]:
        """Apply a submitted settings form; the problems by field (nothing is changed when there are any)."""
        errors: dict[str, str] = {}
        direction = form.get("direction", self.direction)
        if direction not in DIRECTIONS:
            errors["direction"] = "Choose a sync direction from the list."
        try:
            interval = int(form.get("interval_minutes", self.interval_minutes))
        except ValueError:
            interval = -1
        if interval not in INTERVALS:
            errors["interval_minutes"] = "Choose 5, 15, 30 or 60 minutes."
        reminder = form.get("reminder_minutes", "" if self.reminder_minutes is None else str(self.reminder_minutes))
        if reminder not in REMINDERS:
            errors["reminder_minutes"] = "Choose a reminder from the list."
        if errors:
            return errors
        self.direction = direction
        self.interval_minutes = interval
        self.reminder_minutes = int(reminder) if reminder else None
        for name in TOGGLES:
            setattr(self, name, form.get(name) in ("on", "true", "1"))
        return {}
