"""Messages to booked customers (issue 17): texts in fi/sv/en, the .ics calendar entry, e-mail
over SMTP and SMS through a pluggable gateway. The outbox that decides when to send them is in
signaling/booking/booking_outbox.py.

    ics.calendar(...)            -> bytes of a VCALENDAR with one VEVENT (RFC 5545)
    texts.render(...)            -> Message(subject, body, sms) in the booking's language
    mailer.SmtpMailer.send(...)  -> one e-mail (with the .ics attached)
    sms.HttpSmsGateway.send(...) -> one SMS through the configured HTTP gateway
"""
