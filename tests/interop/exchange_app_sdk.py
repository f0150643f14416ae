"""Microsoft's Graph SDK for Python (msgraph-sdk, on Kiota and httpx) drives the emulator's
`/applications` and app management policy endpoints the way Exchange Server hybrid's dedicated
application is kept (issue 27), pointed at the emulator as graph_sdk.py explains:

1. create the application `ExchangeServerApp-<org guid>` (POST /applications);
2. find it with $filter=displayName eq '…' (a collection read: `key` comes back null);
3. PATCH its keyCredentials with a first key, read the list again, then PATCH the kept key as
   read (key null, its keyId) plus a second one, as Microsoft's
   ConfigureExchangeHybridApplication.ps1 does, and read both back with $select=keyCredentials;
4. PATCH the tenant default app management policy (asymmetricKeyLifetime P365D, `maxLifetime`
   given as the ISO string: a Python timedelta would be written as "365 days, 0:00:00" by Kiota's
   JSON writer) and read it back;
5. a five-year key without dates: the refusal's code and message as the SDK surfaces them.

usage: exchange_app_sdk.py CONFIG_JSON (graph_url, login_url, tenant_id, client_id, ca_file,
       display_name, cert_a_pem, cert_b_pem, cert_long_pem; the admin secret in $HT_ADMIN_SECRET)
"""
import asyncio
import base64
import datetime
import json
import os
import ssl
import sys
from urllib.parse import urlparse

import httpx
from azure.identity import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.applications.applications_request_builder import (
    ApplicationsRequestBuilder,
)
from msgraph.generated.applications.item.application_item_request_builder import (
    ApplicationItemRequestBuilder,
)
from msgraph.generated.models.app_key_credential_restriction_type import (
    AppKeyCredentialRestrictionType,
)
from msgraph.generated.models.app_management_application_configuration import (
    AppManagementApplicationConfiguration,
)
from msgraph.generated.models.application import Application
from msgraph.generated.models.key_credential import KeyCredential
from msgraph.generated.models.key_credential_configuration import KeyCredentialConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.tenant_app_management_policy import TenantAppManagementPolicy
from msgraph_core import GraphClientFactory

cfg = json.load(open(sys.argv[1]))
ca = cfg["ca_file"]
out = {}


def der(path):
    pem = open(path).read()
    return base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l))


def graph_client():
    credential = ClientSecretCredential(
        cfg["tenant_id"],
        cfg["client_id"],
        os.environ["HT_ADMIN_SECRET"],
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


def keys(app):
    return [
        {
            "keyId": str(k.key_id) if k.key_id else None,
            "key": base64.b64encode(k.key).decode() if k.key else None,
            "customKeyIdentifier": base64.b64encode(k.custom_key_identifier).decode()
            if k.custom_key_identifier
            else None,
        }
        for k in (app.key_credentials or [])
    ]


async def find(client, name):
    q = ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
        filter=f"displayName eq '{name}'",
    )
    found = await client.applications.get(
        request_configuration=RequestConfiguration(query_parameters=q)
    )
    return found.value


async def steps():
    client = graph_client()
    name = cfg["display_name"]
    created = await client.applications.post(
        Application(display_name=name, sign_in_audience="AzureADMyOrg")
    )
    out["created"] = {"id": created.id, "appId": created.app_id, "name": created.display_name}
    found = await find(client, name)
    out["found"] = [{"id": a.id, "appId": a.app_id} for a in found]
    item = client.applications.by_application_id(created.id)
    await item.patch(
        Application(
            key_credentials=[
                KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=der(cfg["cert_a_pem"]))
            ]
        )
    )
    listed = (await find(client, name))[0]
    out["listed"] = keys(listed)
    # The kept key as read (key null) plus a new one.
    kept = list(listed.key_credentials or [])
    new = KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=der(cfg["cert_b_pem"]))
    await item.patch(Application(key_credentials=kept + [new]))
    sel = ApplicationItemRequestBuilder.ApplicationItemRequestBuilderGetQueryParameters(
        select=["id", "keyCredentials"]
    )
    back = await item.get(request_configuration=RequestConfiguration(query_parameters=sel))
    out["read_back"] = keys(back)

    policy = TenantAppManagementPolicy(
        is_enabled=True,
        application_restrictions=AppManagementApplicationConfiguration(
            key_credentials=[
                KeyCredentialConfiguration(
                    restriction_type=AppKeyCredentialRestrictionType.AsymmetricKeyLifetime,
                    max_lifetime="P365D",
                    restrict_for_apps_created_after_date_time=datetime.datetime(
                        2020, 1, 1, tzinfo=datetime.timezone.utc
                    ),
                )
            ],
            password_credentials=[],
        ),
    )
    await client.policies.default_app_management_policy.patch(policy)
    read = await client.policies.default_app_management_policy.get()
    k = read.application_restrictions.key_credentials[0]
    out["policy"] = {
        "id": read.id,
        "isEnabled": read.is_enabled,
        "restrictionType": k.restriction_type.value if k.restriction_type else None,
        "maxLifetimeDays": k.max_lifetime.days if k.max_lifetime else None,
        "state": k.state.value if k.state else None,
    }
    try:
        await item.patch(
            Application(
                key_credentials=[
                    KeyCredential(
                        type="AsymmetricX509Cert", usage="Verify", key=der(cfg["cert_long_pem"])
                    )
                ]
            )
        )
        out["refused"] = None
    except ODataError as e:
        out["refused"] = {
            "status": e.response_status_code,
            "code": e.error.code if e.error else None,
            "message": e.error.message if e.error else None,
        }


try:
    asyncio.run(steps())
except Exception as e:  # reported to the test, which shows it
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
