"""The pieces of ``email-service demo``: a local IMAP server and the sample mail."""
