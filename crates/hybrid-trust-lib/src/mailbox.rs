//! Email addresses the reminder channels can deliver to: the one check, used by the settings,
//! `tenant add --notify` and every mail channel (a leaf: it knows no channel or setting).

/// A recipient (or sender) as every mail channel takes it: what lettre parses as a mailbox
/// (`user@domain`, or `Name <user@domain>`), whose address has a plain local part (RFC 5322
/// dot-atom: letters, digits and ``!#$%&'*+-/=?^_`{|}~``, dots between). A quoted local part
/// (`"<script>…"@contoso.com`) is valid RFC 5322, but Exchange Online and Microsoft Graph refuse
/// it, so no channel could deliver to it. The one check for addresses: the channels build their
/// messages with it, and the settings and `tenant add --notify` record only what it accepts.
/// The error is the reason, for a message.
pub fn mailbox(addr: &str) -> Result<lettre::message::Mailbox, String> {
    let parsed: lettre::message::Mailbox = addr
        .parse()
        .map_err(|e| format!("not an email address ({e})"))?;
    let local = parsed.email.user();
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if !local
        .split('.')
        .all(|part| !part.is_empty() && part.chars().all(atext))
    {
        return Err(format!(
            "its mailbox name {local:?} is not a plain one (letters, digits, dots and -_+ and the like; no quotes)"
        ));
    }
    Ok(parsed)
}
