"""Microsoft's azure-identity for Python, async flavour: `azure.identity.aio.CertificateCredential`
gets a token as the given application from the emulator's token endpoint. That credential builds
its client assertion itself (azure/identity/_internal/aad_client_base.py,
`_get_client_certificate_assertion`: `base64.urlsafe_b64encode`, which keeps `=` padding, PS256
with `x5t#S256`), unlike the sync one, which goes through MSAL.

Pointed at the emulator with documented knobs only: `authority=<login_url>`,
`disable_instance_discovery=True`, and azure-core's `AsyncioRequestsTransport` over a
requests.Session that trusts the emulator's CA and records the assertion it carries.

usage: aio_certificate.py LOGIN_URL TENANT_ID CLIENT_ID KEY_AND_CERT_PEM SCOPE CA_FILE
Prints one JSON object: ok, claims (of the token) or error, and the assertions sent.
"""
import asyncio
import base64
import json
import sys
from urllib.parse import parse_qs

import requests
from azure.core.pipeline.transport import AsyncioRequestsTransport
from azure.identity.aio import CertificateCredential

login_url, tenant_id, client_id, pem, scope, ca = sys.argv[1:7]


class RecordingSession(requests.Session):
    """A requests.Session that keeps each client assertion it sends, as sent."""

    def __init__(self):
        super().__init__()
        self.trust_env = False
        self.verify = ca
        self.assertions = []

    def request(self, method, url, **kwargs):
        data = kwargs.get("data")
        if isinstance(data, (bytes, str)):
            raw = data.decode() if isinstance(data, bytes) else data
            data = {k: v[0] for k, v in parse_qs(raw).items()}
        if isinstance(data, dict) and data.get("client_assertion"):
            a = data["client_assertion"]
            self.assertions.append(a.decode() if isinstance(a, bytes) else a)
        return super().request(method, url, **kwargs)


def b64url_json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


async def main():
    session = RecordingSession()
    out = {}
    cred = CertificateCredential(
        tenant_id,
        client_id,
        certificate_path=pem,
        authority=login_url,
        disable_instance_discovery=True,
        transport=AsyncioRequestsTransport(
            session=session, session_owner=False, connection_verify=ca
        ),
    )
    try:
        async with cred:
            token = await cred.get_token(scope)
        out["ok"] = True
        out["claims"] = b64url_json(token.token.split(".")[1])
    except Exception as e:  # the test shows what failed
        out["ok"] = False
        out["error"] = str(e)[:2000]
    out["assertions"] = session.assertions
    out["headers"] = [b64url_json(a.split(".")[0]) for a in session.assertions]
    print(json.dumps(out))


asyncio.run(main())
