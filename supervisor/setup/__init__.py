"""The Email Setup Wizard (``email-service setup --db NAME``).

- ``providers``: known mail providers' servers, found from an address's domain (pure).
- ``answers``: checking a person's answers: addresses, ports, choices (pure).
- ``draft``: which value wins: the saved row, a provider, the flags (pure).
- ``checks``: testing each enabled connection with the self-test's probes.
- ``overview``: the first screen: service-wide settings, which databases are served (pure).
- ``sign_in``: Microsoft 365 and Google sign-in: which way is recommended, and the
  administrator's one-time steps with the practice's values (pure).
- ``sign_in_flow``: a person's sign-in: Microsoft's device code, Google's browser sign-in
  (loopback answer, or the address pasted over SSH).
- ``prompt``: the ``Prompt`` interface and the terminal's version.
- ``wizard``: the flow: ask, test, correct, save when asked.
- ``store``: reading and saving the ``email_settings`` row.

``supervisor.commands.setup`` is the command line's thin shell around them;
``docs/setup.md`` is the technician's guide.
"""
