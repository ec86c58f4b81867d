"""Schedules: cron with time zones and DST rules, and the pure planning of fires."""
