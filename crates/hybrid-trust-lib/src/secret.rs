//! Secret newtypes: their `Debug` is redacted, they have no `Display`, and their memory is zeroed
//! on drop. Secrets enter the tool from an environment variable, a file, a prompt or the keyring,
//! never from argv.

use zeroize::Zeroizing;

/// A password or client secret.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }
    /// The secret itself; call only where it is used (a KDF, an HTTP form), never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

/// Secret bytes (private key material).
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(b: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(b))
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes([redacted; {} bytes])", self.0.len())
    }
}

/// `url` without its query and fragment: how a webhook is named in the ledger and in errors.
pub fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// A URL as it may be shown in an error or a log: the userinfo password and every query value
/// replaced by `***`, a fragment by `#***` (issue 14, defect 6). Teams Workflows URLs carry
/// their signature in `sig=`, SharePoint and Azure SAS URLs in `sig=`/`code=`, and a URL may
/// carry `user:password@`. Keys, scheme, host, port and path stay, so the URL is still
/// recognisable. Works on text that is not a valid URL too (a bad port, a wrong scheme): that
/// is exactly when it is printed. This is the one function that makes a URL printable; every
/// error and log line that shows a URL goes through it.
pub fn redact_url(url: &str) -> String {
    // A password may hold an unencoded '?' or '#' (then the text is no valid URL): its userinfo
    // is hidden first, up to the last '@', before the query and fragment are split off.
    if let Some((scheme, after)) = url.split_once("://")
        && url::Url::parse(url).is_err()
        && let Some(at) = after.rfind('@')
        && let Some((user, password)) = after[..at].split_once(':')
        && password != "***"
        && !user.contains(['/', '?', '#'])
    {
        return redact_url(&format!("{scheme}://{user}:***@{}", &after[at + 1..]));
    }
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    let (base, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let mut out = String::with_capacity(url.len());
    match base.split_once("://") {
        Some((scheme, after)) => {
            out.push_str(scheme);
            out.push_str("://");
            // The authority ends at the first '/'. An unencoded '/' in a password makes that
            // guess wrong; when the text is not a valid URL, anything up to the last '@' is
            // then taken as userinfo (more is hidden, nothing leaks).
            let mut end = after.find('/').unwrap_or(after.len());
            if !after[..end].contains('@')
                && url::Url::parse(url).is_err()
                && let Some(at) = after.rfind('@')
            {
                end = after[at..].find('/').map_or(after.len(), |i| at + i);
            }
            let (authority, path) = after.split_at(end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(base),
    }
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, "")) => format!("{k}="),
                Some((k, _)) => format!("{k}=***"),
                None if p.is_empty() => String::new(),
                // A bare value (`?TOKEN`): it may be the secret itself.
                None => "***".to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment.is_some_and(|f| !f.is_empty()) {
        out.push_str("#***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_passwords_and_query_values_only() {
        for (input, want) in [
            (
                "https://prod.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig=S3cr3t",
                "https://prod.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=***&sp=***&sv=***&sig=***",
            ),
            (
                "https://h.example.com:99999/x?sig=S3cr3t",
                "https://h.example.com:99999/x?sig=***",
            ),
            // An unencoded '?' or '#' in a password: none of it shows.
            ("smtp://u:pa?ss@mail:25", "smtp://u:***@mail:25"),
            ("smtp://u:pa#ss@mail:99999", "smtp://u:***@mail:99999"),
            (
                "ftp://h.example.com/x?sig=S3cr3t#frag",
                "ftp://h.example.com/x?sig=***#***",
            ),
            (
                "http://user:S3cr3t@mail.example.com:25",
                "http://user:***@mail.example.com:25",
            ),
            (
                "smtp://user:p@ss:S3cr3t@mail.example.com:70000/",
                "smtp://user:***@mail.example.com:70000/",
            ),
            // Not a URL (port), with a '/' in the password: hidden up to the last '@'.
            (
                "smtp://u:ab/S3cr3t@mail.example.com:70000",
                "smtp://u:***@mail.example.com:70000",
            ),
            (
                "https://user@h.example.com/x",
                "https://user@h.example.com/x",
            ),
            (
                "https://h.example.com/users/noreply@contoso.com/sendMail",
                "https://h.example.com/users/noreply@contoso.com/sendMail",
            ),
            (
                "https://h.example.com/x?S3cr3t",
                "https://h.example.com/x?***",
            ),
            (
                "https://h.example.com/x?a=&b=S3cr3t",
                "https://h.example.com/x?a=&b=***",
            ),
            ("https://login.example.com", "https://login.example.com"),
            ("not a url ?k=S3cr3t", "not a url ?k=***"),
            ("", ""),
        ] {
            let got = redact_url(input);
            assert_eq!(got, want, "{input}");
            assert!(!got.contains("S3cr3t"), "{input}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretString::new("hunter2-very-secret".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        let b = SecretBytes::new(b"key-material".to_vec());
        assert!(!format!("{b:?}").contains("key-material"));
    }
}
