"""Microsoft's own clients drive the emulator: msgraph-sdk (Microsoft Graph SDK for Python, on
Kiota and httpx) with azure-identity for the admin's token, and azure-identity / MSAL for tokens
as 00000004 with a certificate in both assertion forms.

What it does, in order (each step's result goes into one JSON object printed at the end):
1. admin: find the 00000004 service principal with azure-cli's look-up,
   $filter=servicePrincipalNames/any(c:c eq '<appId>');
2. admin: read its keyCredentials (a single-object GET selecting keyCredentials: `key` included);
3. admin: PATCH a kept list (every key as read, SDK models with their @odata.type) plus a new
   key (type, usage, key only: Graph fills in the rest), then read it back;
4. as 00000004: a token with the new certificate, RS256 + x5t (azure-identity's
   CertificateCredential, which signs RS256 only), and PS256 + x5t#S256 (MSAL given the public
   certificate and no SHA-1 thumbprint; azure-identity has no knob for it), each assertion's
   header recorded from the request that carried it.

How the clients are pointed at the emulator (all supported, documented knobs, no patching):
- azure-identity: `authority=<login_url>` (an https URL), `disable_instance_discovery=True`
  (no authority validation against login.microsoftonline.com), `connection_verify=<CA file>`
  (azure-core's RequestsTransport; the environment's REQUESTS_CA_BUNDLE is not needed);
- msgraph-sdk: a GraphRequestAdapter over an httpx.AsyncClient with an SSLContext that trusts the
  CA, built with GraphClientFactory.create_with_default_middleware (Microsoft's middleware:
  retry, redirect, telemetry) and base_url = <graph_url>/v1.0; the Kiota authentication provider
  with the emulator's host in allowed_hosts and scope <graph_url>/.default;
- MSAL: `authority=<login_url>/<tenant>`, `instance_discovery=False`, `validate_authority=False`,
  `http_client=` a requests.Session with verify=<CA file>.

usage: graph_sdk.py CONFIG_JSON   (graph_url, login_url, exchange_url, tenant_id, client_id,
       ca_file, app_id, new_cert_pem, new_key_pem; the admin secret in $HT_ADMIN_SECRET)
"""
import asyncio
import base64
import json
import os
import ssl
import sys
from urllib.parse import parse_qs, urlparse

import httpx
import msal
import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import CertificateCredential, ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.key_credential import KeyCredential
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.service_principals.item.service_principal_item_request_builder import (
    ServicePrincipalItemRequestBuilder,
)
from msgraph.generated.service_principals.service_principals_request_builder import (
    ServicePrincipalsRequestBuilder,
)
from msgraph_core import GraphClientFactory

cfg = json.load(open(sys.argv[1]))
ca = cfg["ca_file"]
app_id = cfg["app_id"]
secret = os.environ["HT_ADMIN_SECRET"]
out = {}


def b64url_json(part):
    part += "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part))


def graph_client():
    credential = ClientSecretCredential(
        cfg["tenant_id"],
        cfg["client_id"],
        secret,
        authority=cfg["login_url"],
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    host = urlparse(cfg["graph_url"])
    auth = AzureIdentityAuthenticationProvider(
        credential,
        scopes=[cfg["graph_url"] + "/.default"],
        allowed_hosts=[host.hostname, host.netloc],
    )
    http = httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca), trust_env=False)
    http = GraphClientFactory.create_with_default_middleware(client=http)
    http.base_url = cfg["graph_url"] + "/v1.0"
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = cfg["graph_url"] + "/v1.0"
    return GraphServiceClient(request_adapter=adapter)


def key_summary(k):
    return {
        "keyId": str(k.key_id) if k.key_id else None,
        "displayName": k.display_name,
        # Edm.Binary: the SDK hands out the Base64-decoded bytes; Base64 again is the JSON text
        # (what Microsoft's PowerShell script compares with the hex thumbprint).
        "customKeyIdentifier": base64.b64encode(k.custom_key_identifier).decode()
        if k.custom_key_identifier
        else None,
        "key": base64.b64encode(k.key).decode() if k.key else None,
        "startDateTime": k.start_date_time.isoformat() if k.start_date_time else None,
        "endDateTime": k.end_date_time.isoformat() if k.end_date_time else None,
        "type": k.type,
        "usage": k.usage,
    }


async def graph_steps():
    client = graph_client()
    # 1. azure-cli's look-up.
    query = ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
        filter=f"servicePrincipalNames/any(c:c eq '{app_id}')",
        select=["id", "appId", "displayName"],
    )
    found = await client.service_principals.get(
        request_configuration=RequestConfiguration(query_parameters=query)
    )
    out["found"] = [{"id": sp.id, "appId": sp.app_id} for sp in found.value]
    sp_id = found.value[0].id
    # 2. keyCredentials with `key`.
    item_query = (
        ServicePrincipalItemRequestBuilder.ServicePrincipalItemRequestBuilderGetQueryParameters(
            select=["id", "appId", "keyCredentials"],
        )
    )
    sp = await client.service_principals.by_service_principal_id(sp_id).get(
        request_configuration=RequestConfiguration(query_parameters=item_query)
    )
    kept = list(sp.key_credentials or [])
    out["read"] = [key_summary(k) for k in kept]
    # 3. The kept list plus a new key, then read back.
    pem = open(cfg["new_cert_pem"]).read()
    der = base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l))
    new = KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=der)
    await client.service_principals.by_service_principal_id(sp_id).patch(
        ServicePrincipal(key_credentials=kept + [new])
    )
    out["patched"] = True
    back = await client.service_principals.by_service_principal_id(sp_id).get(
        request_configuration=RequestConfiguration(query_parameters=item_query)
    )
    out["read_back"] = [key_summary(k) for k in back.key_credentials]
    plain = await client.service_principals.by_service_principal_id(sp_id).get()
    out["plain_get_keys"] = [key_summary(k) for k in plain.key_credentials]


class RecordingSession(requests.Session):
    """A requests.Session that keeps the header of each client assertion it sends."""

    def __init__(self):
        super().__init__()
        self.trust_env = False
        self.verify = ca
        self.assertion_headers = []

    def request(self, method, url, **kwargs):
        data = kwargs.get("data")
        if isinstance(data, (bytes, str)):
            raw = data.decode() if isinstance(data, bytes) else data
            data = {k: v[0] for k, v in parse_qs(raw).items()}
        if isinstance(data, dict) and data.get("client_assertion"):
            assertion = data["client_assertion"]
            if isinstance(assertion, bytes):
                assertion = assertion.decode()
            self.assertion_headers.append(b64url_json(assertion.split(".")[0]))
        return super().request(method, url, **kwargs)


def claims_of(token):
    return b64url_json(token.split(".")[1])


def token_steps():
    scope = cfg["exchange_url"] + "/.default"
    key_pem = open(cfg["new_key_pem"]).read()
    cert_pem = open(cfg["new_cert_pem"]).read()
    # RS256 + x5t: azure-identity's CertificateCredential (key and certificate in one PEM).
    both = os.path.join(os.path.dirname(cfg["new_key_pem"]), "key-and-cert.pem")
    with open(both, "w") as f:
        f.write(key_pem + cert_pem)
    recording = RecordingSession()
    cred = CertificateCredential(
        cfg["tenant_id"],
        app_id,
        certificate_path=both,
        authority=cfg["login_url"],
        disable_instance_discovery=True,
        # azure-core's transport over a session that records the assertion it carries.
        transport=RequestsTransport(session=recording, session_owner=False, connection_verify=ca),
    )
    try:
        token = cred.get_token(scope)
        out["azure_identity"] = {"ok": True, "claims": claims_of(token.token)}
    except Exception as e:  # the test shows what failed
        out["azure_identity"] = {"ok": False, "error": str(e)[:2000]}
    out["azure_identity"]["assertion_headers"] = recording.assertion_headers
    # MSAL itself, in both forms.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    forms = {
        "rs256_x5t": {"private_key": key_pem, "thumbprint": cert.fingerprint(hashes.SHA1()).hex()},
        # No SHA-1 thumbprint, the public certificate: MSAL signs PS256 with x5t#S256.
        "ps256_x5t_s256": {"private_key": key_pem, "public_certificate": cert_pem},
    }
    for name, credential in forms.items():
        session = RecordingSession()
        app = msal.ConfidentialClientApplication(
            app_id,
            authority=f"{cfg['login_url']}/{cfg['tenant_id']}",
            client_credential=credential,
            validate_authority=False,
            instance_discovery=False,
            http_client=session,
        )
        result = app.acquire_token_for_client(scopes=[scope])
        entry = {
            "ok": "access_token" in result,
            "assertion_headers": session.assertion_headers,
        }
        if entry["ok"]:
            entry["claims"] = claims_of(result["access_token"])
        else:
            entry["error_codes"] = result.get("error_codes")
            entry["error_description"] = result.get("error_description")
        out["msal_" + name] = entry


try:
    asyncio.run(graph_steps())
except Exception as e:  # the test prints what the SDK raised
    out["graph_error"] = repr(e)[:3000]
    err = getattr(e, "error", None)
    if err is not None:
        out["graph_error_code"] = getattr(err, "code", None)
        out["graph_error_message"] = getattr(err, "message", None)
token_steps()
print(json.dumps(out, default=str))
