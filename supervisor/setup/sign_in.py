"""Sign-in with Microsoft 365 or Google in the wizard: which way, and what an administrator
does once. Pure: texts from the practice's settings.

``provider_of(settings)`` says whether the practice's mail servers are Microsoft's or
Google's (the wizard then offers sign-in); ``recommended_flow`` is the way this server
should use; ``recommendation`` says why in a few lines; ``admin_steps`` lists what an
administrator must do once, with the exact commands and the practice's values filled in
(tenant, client ID, mailbox). The values a person has not given yet are shown as
``<...>``. OAUTH2.md is the source of every step.
"""

from __future__ import annotations

from actors.mail.settings import EmailSettings
from actors.mail.sign_in_words import GOOGLE_HOSTS, MICROSOFT_HOSTS
from supervisor.setup.providers import domain_of

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
EXCHANGE_APP_SCOPE = "https://outlook.office365.com/.default"
CONSUMER_GOOGLE_DOMAINS = ("gmail.com", "googlemail.com")
CONSUMER_MICROSOFT_DOMAINS = ("outlook.com", "hotmail.com", "live.com")
"""Personal Microsoft accounts: no organisation, so no app-only; tenant ``consumers``."""


def _at(host: str, suffixes: tuple[str, ...]) -> bool:
    host = host.strip().lower().rstrip(".")
    return any(host == s or host.endswith("." + s) for s in suffixes)


def provider_of(settings: EmailSettings) -> str:
    """``microsoft``, ``google`` or "" from the mail servers (SMTP first), else from a
    provider already chosen in ``oauth_provider``."""
    for host in (settings.smtp_host, settings.imap_host):
        if _at(host, MICROSOFT_HOSTS):
            return "microsoft"
        if _at(host, GOOGLE_HOSTS):
            return "google"
    return settings.oauth_provider


def recommended_flow(provider: str, address: str) -> str:
    """``app`` (the service signs in as itself) or ``delegated`` (a person signs in once):
    Microsoft 365: app; Google Workspace: app (a service account); a gmail.com address:
    delegated (a service account works only in a Workspace domain)."""
    consumer = CONSUMER_GOOGLE_DOMAINS if provider == "google" else CONSUMER_MICROSOFT_DOMAINS
    return "delegated" if domain_of(address) in consumer else "app"


def recommendation(provider: str, address: str) -> list[str]:
    """A few lines for the technician: which way is recommended here, and why."""
    if provider == "microsoft" and domain_of(address) in CONSUMER_MICROSOFT_DOMAINS:
        return [
            "Outlook.com is retiring password sign-in; sign in with Microsoft instead.",
            "Recommended for a personal Outlook.com account: delegated (a person signs in once",
            "  with a code shown here; works over SSH), tenant consumers, with an app",
            "  registered for personal Microsoft accounts. App-only needs an organisation.",
        ]
    if provider == "microsoft":
        return [
            "Microsoft 365 no longer takes passwords for IMAP, and turns them off for SMTP by "
            "the end of December 2026: sign in with Microsoft instead.",
            "Recommended for this unattended server: app (the service signs in as itself).",
            "  No person's sign-in to lapse after 90 days unused or to end with a password",
            "  change; access only to the mailboxes an administrator grants. It needs a",
            "  Microsoft 365 administrator once (Exchange Online PowerShell); the app's client",
            "  secret has an end date, which the status page warns about 14 days ahead.",
            "Otherwise: delegated (a person signs in once with a code shown here; works over",
            "  SSH). Choose it when no administrator can run the steps for app.",
        ]
    if domain_of(address) in CONSUMER_GOOGLE_DOMAINS:
        return [
            "Google no longer accepts the account's own password; sign in with Google instead.",
            "Recommended for a gmail.com account: delegated (a person signs in once in a",
            "  browser; the service keeps the sign-in). It ends if the password is changed, if",
            "  it goes unused for 6 months, or after 7 days while the Google Cloud consent",
            "  screen is in Testing: publish it.",
        ]
    return [
        "Google Workspace no longer accepts passwords (less secure apps); sign in with Google.",
        "Recommended for a Workspace domain: app (a service account with domain-wide",
        "  delegation): unattended, nothing for a person to renew. The Workspace administrator",
        "  authorises it once. Its key file opens every mailbox of the domain: keep it safe.",
        "Otherwise: delegated (a person signs in once in a browser; an Internal consent",
        "  screen keeps it from lapsing after 7 days).",
    ]


def _or(value: str, placeholder: str) -> str:
    return value.strip() or placeholder


def admin_consent_url(tenant: str, client_id: str) -> str:
    """The address an administrator opens to approve the app for the organisation."""
    return (
        f"{MICROSOFT_AUTHORITY}/{_or(tenant, '<tenant ID>')}/v2.0/adminconsent"
        f"?client_id={_or(client_id, '<client ID>')}&scope={EXCHANGE_APP_SCOPE}"
    )


def _mailbox(settings: EmailSettings) -> str:
    return _or(settings.oauth_account or settings.from_address, "<mailbox>")


def _exchange_mailbox_lines(settings: EmailSettings) -> list[str]:
    box = _mailbox(settings)
    lines = [f"    Set-CASMailbox -Identity {box} -SmtpClientAuthenticationDisabled $false"]
    if settings.imap_enabled:
        lines.append(f"    Set-CASMailbox -Identity {box} -ImapEnabled $true")
    return lines


def _microsoft_app_steps(settings: EmailSettings) -> list[str]:
    tenant = _or(settings.oauth_tenant, "<tenant ID>")
    client = _or(settings.oauth_client_id, "<client ID>")
    box = _mailbox(settings)
    return [
        "What a Microsoft 365 administrator does once (app):",
        "  1. Entra admin centre (entra.microsoft.com), App registrations, New registration:",
        "     name it e.g. Practice Email Service, single tenant. Note the Application",
        "     (client) ID and the Directory (tenant) ID.",
        "  2. API permissions, Add a permission, APIs my organization uses, Office 365",
        "     Exchange Online, Application permissions: IMAP.AccessAsApp and SMTP.SendAsApp.",
        "     Then Grant admin consent, or open as an administrator:",
        f"     {admin_consent_url(settings.oauth_tenant, settings.oauth_client_id)}",
        "  3. Certificates & secrets, New client secret: copy its Value (not the Secret ID)",
        "     and note its end date (asked below).",
        "  4. Exchange Online PowerShell (Install-Module ExchangeOnlineManagement;",
        "     Connect-ExchangeOnline). The Object ID is the Enterprise application's",
        "     (Entra admin centre, Enterprise applications, this app), not the App",
        "     registration's: the wrong one fails the sign-in.",
        f"    New-ServicePrincipal -AppId {client} -ObjectId <Enterprise application Object ID>",
        f"    Add-MailboxPermission -Identity {box} -User <Enterprise application Object ID> "
        "-AccessRights FullAccess",
        *_exchange_mailbox_lines(settings),
        f"     (tenant {tenant}; the service signs in as the app and opens {box} only.)",
    ]


def _microsoft_delegated_steps(settings: EmailSettings) -> list[str]:
    tenant = _or(settings.oauth_tenant, "<tenant ID>")
    client = _or(settings.oauth_client_id, "<client ID>")
    return [
        "What a Microsoft 365 administrator does once (delegated):",
        "  1. Entra admin centre, App registrations, New registration (single tenant); under",
        "     Authentication turn on Allow public client flows (the code sign-in needs it).",
        "  2. API permissions, Microsoft Graph, Delegated permissions: IMAP.AccessAsUser.All,",
        "     SMTP.Send and offline_access; Grant admin consent, or open as an administrator:",
        f"     {MICROSOFT_AUTHORITY}/{tenant}/adminconsent?client_id={client}",
        "  3. Exchange Online PowerShell (Connect-ExchangeOnline):",
        *_exchange_mailbox_lines(settings),
        "  Then the mailbox's user signs in here with a code, once. The sign-in lapses after",
        "  90 days unused (the service uses it daily) and when the password is reset.",
    ]


def _google_app_steps(settings: EmailSettings, client_id: str) -> list[str]:
    return [
        "What the Google Workspace administrator does once (service account):",
        "  1. Google Cloud console (console.cloud.google.com): a project, IAM & Admin,",
        "     Service accounts, Create; then Keys, Add key, JSON: the key file (asked below).",
        "  2. Admin console (admin.google.com), Security, Access and data control, API",
        "     controls, Manage Domain Wide Delegation, Add new:",
        f"       Client ID: {_or(client_id, '<the client_id in the key file>')}",
        f"       OAuth scopes: {GOOGLE_MAIL_SCOPE}",
        "  3. Admin console, Apps, Google Workspace, Gmail, End User Access: IMAP access on",
        f"     for {_mailbox(settings)}.",
    ]


def _google_delegated_steps(settings: EmailSettings) -> list[str]:
    return [
        "What to do once in Google (delegated):",
        "  1. Google Cloud console (console.cloud.google.com), APIs & Services, OAuth consent",
        "     screen: Internal for a Workspace domain; for gmail.com External and then",
        f"     Publish (in Testing a sign-in lasts 7 days). Add the scope {GOOGLE_MAIL_SCOPE}.",
        "  2. Credentials, Create credentials, OAuth client ID, Desktop app: copy its client",
        "     ID and client secret (asked below).",
        f"  3. Gmail of {_mailbox(settings)}: Settings, Forwarding and POP/IMAP, Enable IMAP.",
    ]


def admin_steps(settings: EmailSettings, google_client_id: str = "") -> list[str]:
    """What an administrator does once for ``settings``' provider and flow, with the exact
    commands and the practice's values filled in. ``google_client_id``: the service
    account's client ID (from its key file), for the domain-wide delegation."""
    if settings.oauth_provider == "microsoft" and settings.oauth_flow == "app":
        return _microsoft_app_steps(settings)
    if settings.oauth_provider == "microsoft":
        return _microsoft_delegated_steps(settings)
    if settings.oauth_flow == "app":
        return _google_app_steps(settings, google_client_id)
    return _google_delegated_steps(settings)
