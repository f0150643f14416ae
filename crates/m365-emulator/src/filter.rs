//! The OData `$filter` subset Graph answers on `servicePrincipals` without advanced query
//! parameters, as the clients people use send it:
//! - `appId eq '…'`, `id eq '…'`, `displayName eq '…'` (Microsoft's scripts, `Get-MgServicePrincipal
//!   -Filter "AppId eq '…'"`: property names are case-insensitive), `ne` too;
//! - `accountEnabled eq true|false`;
//! - `servicePrincipalNames/any(c:c eq '…')` (azure-cli's look-up; real captures in
//!   fixtures/graph-captures) and `any(c:startswith(c,'…'))`;
//! - `startswith(displayName,'…')`;
//! - `and`, `or`, `not` and parentheses.
//!
//! Anything else is `Request_UnsupportedQuery`, as Graph answers `endswith` without
//! `ConsistencyLevel: eventual`. String comparisons are case-insensitive, as in the directory.
//! The query string has already been percent-decoded, so `%20`-only and fully encoded forms
//! (both seen from azure-cli) arrive here alike.

use super::state::ServicePrincipal;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
    Colon,
    Slash,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `prop eq|ne 'value'` on a string property.
    Cmp {
        prop: Prop,
        negate: bool,
        value: String,
    },
    /// `accountEnabled eq true|false`.
    Enabled(bool),
    /// `startswith(prop,'value')`.
    StartsWith {
        prop: Prop,
        value: String,
    },
    /// `servicePrincipalNames/any(x: x eq 'value')` or `any(x: startswith(x,'value'))`.
    AnyName {
        value: String,
        prefix: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prop {
    AppId,
    Id,
    DisplayName,
    AppDisplayName,
}

fn tokens(f: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = f.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' | ':' | '/' => {
                chars.next();
                out.push(match c {
                    '(' => Tok::Open,
                    ')' => Tok::Close,
                    ',' => Tok::Comma,
                    ':' => Tok::Colon,
                    _ => Tok::Slash,
                });
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        '\'' => break,
                        other => s.push(other),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' {
                        s.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Ident(s));
            }
            _ => return None,
        }
    }
    Some(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok) -> Option<()> {
        (self.next()? == t).then_some(())
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(i)) if i.eq_ignore_ascii_case(kw))
    }
    fn string(&mut self) -> Option<String> {
        match self.next()? {
            Tok::Str(s) => Some(s),
            _ => None,
        }
    }

    fn or(&mut self) -> Option<Expr> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Some(left)
    }

    fn and(&mut self) -> Option<Expr> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Some(left)
    }

    fn unary(&mut self) -> Option<Expr> {
        // Bounded nesting: a hostile filter cannot exhaust the stack.
        self.depth += 1;
        if self.depth > 32 {
            return None;
        }
        let e = if self.keyword("not") {
            self.pos += 1;
            Expr::Not(Box::new(self.unary()?))
        } else if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let e = self.or()?;
            self.expect(Tok::Close)?;
            e
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Some(e)
    }

    fn primary(&mut self) -> Option<Expr> {
        let Tok::Ident(name) = self.next()? else {
            return None;
        };
        if name.eq_ignore_ascii_case("startswith") {
            self.expect(Tok::Open)?;
            let Tok::Ident(p) = self.next()? else {
                return None;
            };
            let prop = prop(&p)?;
            self.expect(Tok::Comma)?;
            let value = self.string()?;
            self.expect(Tok::Close)?;
            return Some(Expr::StartsWith { prop, value });
        }
        if name.eq_ignore_ascii_case("servicePrincipalNames") {
            self.expect(Tok::Slash)?;
            let Tok::Ident(any) = self.next()? else {
                return None;
            };
            if !any.eq_ignore_ascii_case("any") {
                return None;
            }
            self.expect(Tok::Open)?;
            let Tok::Ident(var) = self.next()? else {
                return None;
            };
            self.expect(Tok::Colon)?;
            let Tok::Ident(first) = self.next()? else {
                return None;
            };
            let e = if first == var {
                let Tok::Ident(op) = self.next()? else {
                    return None;
                };
                if !op.eq_ignore_ascii_case("eq") {
                    return None;
                }
                Expr::AnyName {
                    value: self.string()?,
                    prefix: false,
                }
            } else if first.eq_ignore_ascii_case("startswith") {
                self.expect(Tok::Open)?;
                if self.next()? != Tok::Ident(var) {
                    return None;
                }
                self.expect(Tok::Comma)?;
                let value = self.string()?;
                self.expect(Tok::Close)?;
                Expr::AnyName {
                    value,
                    prefix: true,
                }
            } else {
                return None;
            };
            self.expect(Tok::Close)?;
            return Some(e);
        }
        let Tok::Ident(op) = self.next()? else {
            return None;
        };
        let negate = if op.eq_ignore_ascii_case("eq") {
            false
        } else if op.eq_ignore_ascii_case("ne") {
            true
        } else {
            return None;
        };
        if name.eq_ignore_ascii_case("accountEnabled") {
            let Tok::Ident(b) = self.next()? else {
                return None;
            };
            let b = match b.as_str() {
                "true" => true,
                "false" => false,
                _ => return None,
            };
            return Some(Expr::Enabled(b != negate));
        }
        let prop = prop(&name)?;
        let value = self.string()?;
        Some(Expr::Cmp {
            prop,
            negate,
            value,
        })
    }
}

fn prop(name: &str) -> Option<Prop> {
    match name.to_ascii_lowercase().as_str() {
        "appid" => Some(Prop::AppId),
        "id" => Some(Prop::Id),
        "displayname" => Some(Prop::DisplayName),
        "appdisplayname" => Some(Prop::AppDisplayName),
        _ => None,
    }
}

/// Parses a `$filter`; `None` when it is outside the supported subset.
pub fn parse(f: &str) -> Option<Expr> {
    let mut p = Parser {
        toks: tokens(f)?,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    (p.pos == p.toks.len()).then_some(e)
}

fn value_of(sp: &ServicePrincipal, prop: Prop) -> String {
    match prop {
        Prop::AppId => sp.app_id.clone(),
        Prop::Id => sp.id.to_string(),
        Prop::DisplayName | Prop::AppDisplayName => sp.display_name.clone(),
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.to_lowercase().starts_with(&prefix.to_lowercase())
}

pub fn matches(e: &Expr, sp: &ServicePrincipal) -> bool {
    match e {
        Expr::And(a, b) => matches(a, sp) && matches(b, sp),
        Expr::Or(a, b) => matches(a, sp) || matches(b, sp),
        Expr::Not(a) => !matches(a, sp),
        Expr::Cmp {
            prop,
            negate,
            value,
        } => (value_of(sp, *prop).to_lowercase() == value.to_lowercase()) != *negate,
        Expr::Enabled(b) => sp.account_enabled == *b,
        Expr::StartsWith { prop, value } => starts_with_ci(&value_of(sp, *prop), value),
        Expr::AnyName { value, prefix } => sp.service_principal_names.iter().any(|n| {
            if *prefix {
                starts_with_ci(n, value)
            } else {
                n.to_lowercase() == value.to_lowercase()
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_clients_send_parse() {
        for f in [
            "appId eq '00000004-0000-0ff1-ce00-000000000000'",
            "AppId eq '00000004-0000-0ff1-ce00-000000000000'",
            "servicePrincipalNames/any(c:c eq '00000004-0000-0ff1-ce00-000000000000')",
            "servicePrincipalNames/any(x: startswith(x, 'https://'))",
            "startswith(displayName,'Skype')",
            "accountEnabled eq false and (appId eq 'a' or id ne 'b')",
            "not(displayName eq 'it''s')",
        ] {
            assert!(parse(f).is_some(), "{f}");
        }
    }

    #[test]
    fn everything_else_is_unsupported() {
        for f in [
            "",
            "endswith(displayName,'x')",
            "appId eq",
            "appId gt 'a'",
            "servicePrincipalNames/any(c:d eq 'x')",
            "servicePrincipalNames/all(c:c eq 'x')",
            "appId eq 'unterminated",
            "appId eq 'a' and",
            &"(".repeat(100),
            "keyCredentials/any(k:k/keyId eq 'x')",
        ] {
            assert!(parse(f).is_none(), "{f:?}");
        }
    }
}
