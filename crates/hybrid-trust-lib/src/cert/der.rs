//! Just enough DER (X.690) to walk PKCS#8, PKCS#1 and the outer PFX/certificate SEQUENCE without
//! trusting lengths: every read is bounds-checked and returns `None` on malformed input.

/// Reads one TLV, returning (tag, contents, rest).
pub fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len0, mut rest) = rest.split_first()?;
    let len = if len0 < 0x80 {
        usize::from(len0)
    } else {
        let n = usize::from(len0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut l = 0usize;
        for &b in &rest[..n] {
            l = (l << 8) | usize::from(b);
        }
        rest = &rest[n..];
        l
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Whether `bytes` starts like a PFX (`SEQUENCE { INTEGER 3, … }`), judged from the header alone so
/// that a truncated PFX is still recognised as one.
pub fn looks_like_pfx(bytes: &[u8]) -> bool {
    let Some((&0x30, rest)) = bytes.split_first() else {
        return false;
    };
    let Some((&len0, rest)) = rest.split_first() else {
        return false;
    };
    let skip = if len0 < 0x80 {
        0
    } else {
        usize::from(len0 & 0x7f)
    };
    rest.get(skip..skip + 3) == Some(&[0x02, 0x01, 0x03][..])
}

/// Strips leading zero bytes of a DER INTEGER (keeping one byte).
pub fn unsigned(v: &[u8]) -> &[u8] {
    let i = v
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(v.len().saturating_sub(1));
    &v[i..]
}

const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// The algorithm of a PKCS#8 `PrivateKeyInfo`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Pkcs8Alg {
    Rsa,
    Ec,
    Other,
}

/// Splits a PKCS#8 `PrivateKeyInfo` into its algorithm and inner private key octets.
pub fn pkcs8_parts(der: &[u8]) -> Option<(Pkcs8Alg, &[u8])> {
    let (tag, seq, _) = read_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (t, _version, rest) = read_tlv(seq)?;
    if t != 0x02 {
        return None;
    }
    let (t, alg_seq, rest) = read_tlv(rest)?;
    if t != 0x30 {
        return None;
    }
    let (t, oid, _) = read_tlv(alg_seq)?;
    if t != 0x06 {
        return None;
    }
    let (t, key, _) = read_tlv(rest)?;
    if t != 0x04 {
        return None;
    }
    let alg = if oid == RSA_ENCRYPTION {
        Pkcs8Alg::Rsa
    } else if oid == EC_PUBLIC_KEY {
        Pkcs8Alg::Ec
    } else {
        Pkcs8Alg::Other
    };
    Some((alg, key))
}

/// Modulus and public exponent of a PKCS#1 `RSAPrivateKey` or `RSAPublicKey`.
pub fn rsa_n_e(der: &[u8], private: bool) -> Option<(&[u8], &[u8])> {
    let (tag, seq, _) = read_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let rest = if private {
        let (t, _version, rest) = read_tlv(seq)?;
        if t != 0x02 {
            return None;
        }
        rest
    } else {
        seq
    };
    let (t1, n, rest) = read_tlv(rest)?;
    let (t2, e, _) = read_tlv(rest)?;
    (t1 == 0x02 && t2 == 0x02).then(|| (unsigned(n), unsigned(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_truncated_and_oversized_lengths() {
        assert!(read_tlv(&[]).is_none());
        assert!(read_tlv(&[0x30]).is_none());
        assert!(read_tlv(&[0x30, 0x05, 1, 2]).is_none());
        assert!(read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(
            read_tlv(&[0x30, 0x80]).is_none(),
            "indefinite length is not DER"
        );
        assert_eq!(
            read_tlv(&[0x04, 0x01, 7, 9]),
            Some((0x04, &[7u8][..], &[9u8][..]))
        );
        assert_eq!(unsigned(&[0, 0, 5]), &[5]);
        assert_eq!(unsigned(&[0]), &[0]);
    }
}
