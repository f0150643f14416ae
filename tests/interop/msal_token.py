"""Asks the emulator for an app-only token with Microsoft's MSAL for Python and a certificate
client assertion. Prints one JSON object: {"ok": bool, "claims"?: {...}, "error"?, "error_codes"?}.

usage: msal_token.py AUTHORITY CLIENT_ID CERT_PEM KEY_PEM SHA1_HEX SCOPE CA_FILE [sha256]
"""
import base64
import json
import sys

import msal
import requests

authority, client_id, cert_pem, key_pem, thumb, scope, ca = sys.argv[1:8]
use_sha256 = len(sys.argv) > 8 and sys.argv[8] == "sha256"
credential = {"private_key": open(key_pem).read()}
if use_sha256:
    # MSAL signs PS256 with x5t#S256 when given the public certificate (msal >= 1.29).
    credential["public_certificate"] = open(cert_pem).read()
    credential["thumbprint"] = thumb
else:
    credential["thumbprint"] = thumb
session = requests.Session()
session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
session.verify = ca  # trust the emulator's CA
app = msal.ConfidentialClientApplication(
    client_id,
    authority=authority,
    client_credential=credential,
    validate_authority=False,
    instance_discovery=False,
    http_client=session,
)
result = app.acquire_token_for_client(scopes=[scope])
out = {"ok": "access_token" in result}
if out["ok"]:
    payload = result["access_token"].split(".")[1]
    payload += "=" * (-len(payload) % 4)
    out["claims"] = json.loads(base64.urlsafe_b64decode(payload))
else:
    out["error"] = result.get("error")
    out["error_codes"] = result.get("error_codes")
    out["error_description"] = result.get("error_description")
print(json.dumps(out))
