"""A job as a calendar event (pure): title, times in the business's zone, address, details only when asked."""

from __future__ import annotations

from typing import Any

from fieldhub.capabilities.calendar.protocol import CalendarEvent
from fieldhub.capabilities.calendar.settings import CalendarSettings

LIVE = ("scheduled", "in_progress", "completed")


def job_event(job: Any, settings: CalendarSettings, time_zone: str, *, key: str = "") -> CalendarEvent:
    techs = list(job.technicians)
    summary = job.title
    description = "Scheduled in fieldhub."
    if settings.show_job_details:
        customer = job.customer
        summary = f"{job.title} — {customer.display_name}"
        lines = [f"Customer: {customer.display_name}"]
        if getattr(customer, "phone", ""):
            lines.append(f"Phone: {customer.phone}")
        if techs:
            lines.append("Technicians: " + ", ".join(u.name for u in techs))
        if job.description:
            lines.append("")
            lines.append(job.description)
        if job.notes:
            lines.append("")
            lines.append(f"Notes: {job.notes}")
        description = "\n".join(lines)
    return CalendarEvent(
        calendar_id=settings.calendar_for([u.id for u in techs]),
        key=key,
        summary=summary,
        start=job.scheduled_start,
        end=job.scheduled_end,
        time_zone=time_zone,
        location=job.address,
        description=description,
        reminder_minutes=settings.reminder_minutes,
        cancelled=str(job.status) not in LIVE,
        job_id=job.id,
        job_version=job.version,
    )
