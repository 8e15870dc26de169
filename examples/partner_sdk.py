"""Calling partner-gateway's extension routes from the official Python SDK.

The public partner routes (customers, budgets, freezes, orders, resources,
resellers) have methods on `huaweicloudsdkbssintl`'s `BssintlClient`. The
gateway's extensions (assume-role sessions, orders and resource O&M on a
customer's behalf, authorizations, tokens) have none; `PartnerExtensions`
sends them through the SDK's own request machinery (`do_http_request`), so
they are signed, retried and reported exactly as the SDK's own calls are:
a refused call raises the SDK's `ClientRequestException` (with `status_code`,
`error_code`, `error_msg` and the gateway's `request_id`).

Copy this file next to your code; it needs only `huaweicloudsdkbssintl`
(tested with 3.1.219). See README.md, "Calling it from the official SDK".

    from partner_sdk import PartnerExtensions, http_config

    ext = PartnerExtensions.connect(ak, sk, domain_id="dist-north", endpoint="https://gw.example:8443",
                                    config=http_config(ca_cert="gateway-ca.pem"))
    session = ext.create_session("cust-nova", ["om", "order"], duration_seconds=900)
    inside = ext.inside(session)
    inside.own_resources()
    inside.place_order({"charging": "pay_per_use", "service_type_code": "hws.service.type.obs",
                        "product_id": "obs-standard"})
    ext.end_session(session["session_id"])
"""

import json

from huaweicloudsdkbssintl.v2 import BssintlClient
from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig

# A response model without fields: the SDK then keeps the answer whole in
# `raw_content`, which this helper reads as JSON.
_WHOLE_ANSWER = "UpdateSubCustomerBudgetResponse"


def http_config(ca_cert=None):
    """The SDK's HTTP settings. ca_cert: a PEM file to trust (e.g. the
    gateway's data/dev-cert.pem); None uses the system's roots. (Setting
    `ignore_ssl_verification = True` on it is for a throwaway development
    gateway only.)"""
    config = HttpConfig.get_default_config()
    if ca_cert:
        config.ssl_ca_cert = ca_cert
    return config


def client(ak, sk, domain_id=None, endpoint="https://127.0.0.1:8443", config=None, security_token=None):
    """A BssintlClient for the gateway.

    domain_id: the account the key belongs to, which the SDK signs as
    X-Domain-Id: the partner's id for an operator's key (e.g. "dist-north",
    not the operator's id), the customer's id for a customer's key, or None
    (the gateway then knows the account from the key). A wrong one is the
    uniform 401, whose decision record says `domain_mismatch`.
    """
    creds = GlobalCredentials(ak, sk, domain_id) if domain_id else GlobalCredentials(ak, sk)
    if security_token:
        creds = creds.with_security_token(security_token)
    return (BssintlClient.new_builder().with_http_config(config or http_config())
            .with_credentials(creds).with_endpoint(endpoint).build())


class PartnerExtensions:
    """The extension routes of docs/domain.md section 3, over a BssintlClient
    made by `client` with the same endpoint and config."""

    def __init__(self, sdk_client, endpoint, config=None):
        self.client = sdk_client
        self.endpoint = endpoint
        self.config = config

    @classmethod
    def connect(cls, ak, sk, domain_id=None, endpoint="https://127.0.0.1:8443", config=None):
        return cls(client(ak, sk, domain_id, endpoint, config), endpoint, config)

    def call(self, method, path, body=None, query=None):
        """Any route: signed by the SDK; returns (status, JSON answer or None).
        A 4xx or 5xx raises the SDK's ClientRequestException."""
        resp = self.client.do_http_request(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": "application/json"},
            body=body,
            response_type=_WHOLE_ANSWER,
        )
        content = resp.raw_content
        return resp.status_code, json.loads(content) if content else None

    def _ok(self, method, path, body=None, query=None):
        return self.call(method, path, body, query)[1]

    # Assume-role sessions (R8): switch into a customer's account.
    def create_session(self, customer_id, scopes, duration_seconds=3600):
        """Returns {"session_id", "credential": {"access", "secret",
        "securitytoken", "expires_at"}, ...}."""
        return self._ok("POST", "/v3/partner-sessions",
                        {"customer_id": customer_id, "scopes": list(scopes), "duration_seconds": duration_seconds})

    def inside(self, session):
        """The extension routes signed with a session's temporary credentials
        (no domain id: the session is bound to its customer)."""
        cred = session["credential"]
        sdk = client(cred["access"], cred["secret"], endpoint=self.endpoint, config=self.config,
                     security_token=cred["securitytoken"])
        return PartnerExtensions(sdk, self.endpoint, self.config)

    def list_sessions(self):
        return self._ok("GET", "/v3/partner-sessions")

    def end_session(self, session_id):
        return self.call("DELETE", "/v3/partner-sessions/" + session_id)[0]

    # Inside a session (R9, R10): the customer's own orders and resources.
    def place_order(self, order):
        return self._ok("POST", "/v2/customer/orders", order)

    def own_orders(self):
        return self._ok("GET", "/v2/customer/orders")

    def own_resources(self):
        return self._ok("GET", "/v2/customer/resources")

    def operate_resource(self, resource_id, operation):
        """operation: start, stop, restart, renew or unsubscribe."""
        return self._ok("POST", "/v2/customer/resources/%s/operations" % resource_id, {"operation": operation})

    # Consent (R6, R7).
    def request_authorization(self, customer_id, scopes, duration_days=365):
        return self._ok("POST", "/v2/partners/sub-customers/%s/authorizations" % customer_id,
                        {"scopes": list(scopes), "duration_days": duration_days})

    def customer_overview(self, customer_id):
        return self._ok("GET", "/v2/partners/sub-customers/%s/overview" % customer_id)
