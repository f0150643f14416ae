//! Microsoft Graph `POST /users/{id | userPrincipalName}/sendMail` (GDC user-sendmail.md): a JSON
//! `{"message": {...}, "saveToSentItems"}` body, or the MIME form (the base64 of a whole RFC 5322
//! message with `Content-Type: text/plain`). 202 Accepted with no body.
//!
//! Refusals as Graph gives them (bodies seen in public reports, docs/protocol.md §1.8 shape): the
//! caller's token has no `Mail.Send` → 403 `ErrorAccessDenied` "Access is denied. Check
//! credentials and try again."; no such user → 404 `ErrorInvalidUser` "The requested user '…' is
//! invalid."; a user without an Exchange Online mailbox → 404 `MailboxNotEnabledForRESTAPI` "The
//! mailbox is either inactive, soft-deleted, or is hosted on-premise."; a MIME body that is not
//! base64 → 400 `ErrorMimeContentInvalidBase64String`.
//!
//! Accepted messages are kept in memory and listed at `GET /_emulator/mail` (not persisted).

use super::errors::GraphError;
use super::state::Directory;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// One accepted message, as `GET /_emulator/mail` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Delivered {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body_html: Option<String>,
    pub body_text: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// Handles `sendMail` for `user` (id or UPN) in the caller's tenant.
pub fn send_mail(
    dir: &Directory,
    tenant_id: Uuid,
    permissions: &[String],
    user: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Delivered, GraphError> {
    if !permissions.iter().any(|p| p == "Mail.Send") {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    }
    let tenant = dir
        .tenants
        .iter()
        .find(|t| t.id == tenant_id)
        .ok_or_else(|| {
            GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "The tenant of the token does not exist.",
            )
        })?;
    let u = tenant.user(user).ok_or_else(|| {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{user}' is invalid."),
        )
    })?;
    if !u.mailbox {
        return Err(GraphError::new(
            StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ));
    }
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut msg = if ctype.starts_with("text/plain") {
        let compact: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| {
                GraphError::bad_request(
                    "ErrorMimeContentInvalidBase64String",
                    "Invalid base64 string for MIME content.",
                )
            })?;
        from_mime(&String::from_utf8_lossy(&raw))
    } else {
        from_json(body)?
    };
    if msg.to.is_empty() {
        return Err(GraphError::bad_request(
            "ErrorInvalidRecipients",
            "At least one recipient is not valid.",
        ));
    }
    msg.from = u.upn.clone();
    msg.received_at = now;
    Ok(msg)
}

fn empty() -> Delivered {
    Delivered {
        from: String::new(),
        to: Vec::new(),
        subject: String::new(),
        body_html: None,
        body_text: None,
        received_at: DateTime::<Utc>::MIN_UTC,
    }
}

fn from_json(body: &[u8]) -> Result<Delivered, GraphError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        GraphError::bad_request("BadRequest", "Empty Payload. JSON content expected.")
    })?;
    let m = v.get("message").ok_or_else(|| {
        GraphError::bad_request(
            "ErrorInvalidRequest",
            "The request is invalid: 'message' is required.",
        )
    })?;
    let mut d = empty();
    d.subject = m["subject"].as_str().unwrap_or("").to_string();
    let content = m["body"]["content"].as_str().map(String::from);
    if m["body"]["contentType"]
        .as_str()
        .is_some_and(|c| c.eq_ignore_ascii_case("html"))
    {
        d.body_html = content;
    } else {
        d.body_text = content;
    }
    d.to = m["toRecipients"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["emailAddress"]["address"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok(d)
}

/// Splits a MIME entity into its (unfolded, lowercased-name) headers and body.
fn split(entity: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = match entity.find("\r\n\r\n") {
        Some(i) => (&entity[..i], &entity[i + 4..]),
        None => match entity.find("\n\n") {
            Some(i) => (&entity[..i], &entity[i + 2..]),
            None => (entity, ""),
        },
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A parameter of a structured header value (`boundary="…"`).
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// RFC 2047 `=?utf-8?b?…?=` words (what lettre writes for non-ASCII subjects); other text as is.
fn decode_words(v: &str) -> String {
    v.split_whitespace()
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            if lower.starts_with("=?utf-8?b?") && w.ends_with("?=") {
                base64::engine::general_purpose::STANDARD
                    .decode(&w[10..w.len() - 2])
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|| w.to_string())
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn quoted_printable(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if b[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let Some(h) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(h);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn leaf(headers: &[(String, String)], body: &str, d: &mut Delivered) {
    let ctype = header(headers, "content-type")
        .unwrap_or("text/plain")
        .to_ascii_lowercase();
    let cte = header(headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let bytes = match cte.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_default()
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
    if ctype.starts_with("text/html") {
        d.body_html.get_or_insert(text);
    } else if ctype.starts_with("text/plain") {
        d.body_text.get_or_insert(text);
    }
}

fn walk(entity: &str, d: &mut Delivered, depth: u8) {
    let (headers, body) = split(entity);
    let ctype = header(&headers, "content-type").unwrap_or("text/plain");
    match (
        ctype.to_ascii_lowercase().starts_with("multipart/"),
        param(ctype, "boundary"),
    ) {
        (true, Some(b)) if depth < 8 => {
            let delim = format!("--{b}");
            for part in body.split(delim.as_str()).skip(1) {
                if part.starts_with("--") {
                    break;
                }
                let part = part
                    .strip_prefix("\r\n")
                    .or_else(|| part.strip_prefix('\n'))
                    .unwrap_or(part);
                // The line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
                let part = part
                    .strip_suffix("\r\n")
                    .or_else(|| part.strip_suffix('\n'))
                    .unwrap_or(part);
                walk(part, d, depth + 1);
            }
        }
        _ => leaf(&headers, body, d),
    }
}

/// A message from its MIME text: subject, recipients (`To`, `Cc`), the text and HTML bodies.
pub fn from_mime(raw: &str) -> Delivered {
    let mut d = empty();
    let (headers, _) = split(raw);
    d.subject = header(&headers, "subject")
        .map(decode_words)
        .unwrap_or_default();
    for name in ["to", "cc"] {
        if let Some(v) = header(&headers, name) {
            d.to.extend(v.split(',').filter_map(|a| {
                let a = a.trim();
                let addr = match (a.rfind('<'), a.rfind('>')) {
                    (Some(i), Some(j)) if i < j => &a[i + 1..j],
                    _ => a,
                };
                (!addr.is_empty()).then(|| addr.to_string())
            }));
        }
    }
    walk(raw, &mut d, 0);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_alternatives_are_read_with_their_encodings() {
        let raw = "From: noreply@contoso.com\r\nTo: \"A\" <a@contoso.com>, b@contoso.com\r\nSubject: =?utf-8?b?w6kgZXhhbXBsZQ==?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary=\"XYZ\"\r\n\r\n--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nline one =\r\nstill one=3D\r\n--XYZ\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--XYZ--\r\n";
        let d = from_mime(raw);
        assert_eq!(d.subject, "é example");
        assert_eq!(d.to, vec!["a@contoso.com", "b@contoso.com"]);
        assert_eq!(d.body_text.as_deref(), Some("line one still one="));
        assert_eq!(d.body_html.as_deref(), Some("<b>hi</b>"));
    }
}
