"""A mailbox's mail work: the outbox over SMTP, the inbox over IMAP, SMS (DESIGN decision 7).

Each part is a plain object that runs in its mailbox actor's thread, is given an engine on
the practice database, its incarnation, the practice's ``MailSettings`` and a way to append
events; each write transaction checks the incarnation fence first.
"""
