"""A Python client generated from the gateway's OpenAPI document, signed by
the official SDK's signer (README "The API's contract"). A generated client
cannot sign SDK-HMAC-SHA256 by itself: `SdkAuth` is the glue to copy.

    pip install openapi-python-client==0.29.1 huaweicloudsdkcore==3.1.219
    openapi-python-client generate --path docs/openapi.json --config examples/openapi_client.yml
    pip install ./partner-gateway-client
    python examples/openapi_client.py https://127.0.0.1:8443 data/dev-cert.pem

It lists the distributor admin's customers, reads a budget, and shows that a
wrong secret is refused (.ci/run runs it against `serve --demo`).
"""

import ssl
import sys

import httpx
from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest

# Transport headers httpx adds; the official SDK does not sign them either.
UNSIGNED = {"accept", "accept-encoding", "connection", "content-length", "user-agent"}


class SdkAuth(httpx.Auth):
    """Signs each request with the official SDK's SDK-HMAC-SHA256 signer, over
    the exact method, path, query, headers and body bytes httpx will send."""

    requires_request_body = True

    def __init__(self, credentials):  # a huaweicloudsdkcore GlobalCredentials
        self.credentials = credentials

    def auth_flow(self, request):
        signed = self.credentials.sign_request(SdkRequest(
            method=request.method,
            schema=request.url.scheme,
            host=request.url.netloc.decode(),
            resource_path=request.url.raw_path.decode().split("?")[0],
            query_params=request.url.params.multi_items(),
            header_params={k: v for k, v in request.headers.items() if k not in UNSIGNED},
            body=request.content,
        ))
        request.headers.update(signed.header_params)  # Authorization, X-Sdk-Date, X-Domain-Id...
        yield request


def main(endpoint, cacert):
    from partner_gateway_client import Client
    from partner_gateway_client.api.default import list_sub_customers, show_sub_customer_budget
    from partner_gateway_client.models import ListSubCustomersBody

    def gateway(credentials):
        tls = ssl.create_default_context(cafile=cacert)  # omit verify_ssl for a public CA
        return Client(base_url=endpoint, verify_ssl=tls, httpx_args={"auth": SdkAuth(credentials)})

    # An operator signs with its partner's id as domain id.
    admin = gateway(GlobalCredentials("DEMODISTADMIN0000000", "demo-secret-dist-admin-xxxxxxxxxxxxxxxxx", "dist-north"))
    page = list_sub_customers.sync(client=admin, body=ListSubCustomersBody(limit=5))
    print(f"{page.count} customers; the first: {[c.customer_id for c in page.customer_infos]}")
    assert page.count > 0 and len(page.customer_infos) == 5
    budget = show_sub_customer_budget.sync(client=admin, customer_id="cust-acme")
    print(f"cust-acme's budget: {budget.budget_amount} {budget.currency}")
    assert budget.currency == "USD"

    wrong = gateway(GlobalCredentials("DEMODISTADMIN0000000", "not-the-secret", "dist-north"))
    refused = list_sub_customers.sync_detailed(client=wrong, body=ListSubCustomersBody(limit=5))
    print(f"a wrong secret: {refused.status_code.value} {refused.parsed.error_code}")
    assert refused.status_code == 401


if __name__ == "__main__":
    main(*sys.argv[1:3])
