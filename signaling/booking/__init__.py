"""Booking (issue 17): free slots offered to customers and secretaries, bookings, and
their confirmations and reminders by mail and SMS.
"""
