"""Verifies a client assertion with PyJWT, independently of hybrid-trust.
usage: pyjwt_check.py ASSERTION CERT_PEM AUDIENCE
Prints {"ok": true, "header": {...}, "claims": {...}, "x5t_matches": bool} or {"ok": false, "error": "..."}."""
import base64, hashlib, json, sys
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

assertion, cert_pem, audience = sys.argv[1:4]
cert = x509.load_pem_x509_certificate(open(cert_pem, "rb").read())
der = cert.public_bytes(serialization.Encoding.DER)
b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
try:
    header = jwt.get_unverified_header(assertion)
    claims = jwt.decode(assertion, cert.public_key(), algorithms=["RS256", "PS256"], audience=audience,
                        options={"require": ["exp", "nbf", "iat", "iss", "sub", "aud", "jti"]})
    x5t_ok = header.get("x5t") == b64u(hashlib.sha1(der).digest()) if "x5t" in header else \
        header.get("x5t#S256") == b64u(hashlib.sha256(der).digest())
    print(json.dumps({"ok": True, "header": header, "claims": claims, "x5t_matches": x5t_ok}))
except Exception as e:  # noqa: BLE001 - report any failure
    print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
