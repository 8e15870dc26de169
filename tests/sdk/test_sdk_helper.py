"""examples/partner_sdk.py, the helper README's SDK quick start gives
partners, driving the extension routes through the official SDK against
`partner-gateway serve --demo` (run by .ci/run, like test_sdk.py).

TLS: the gateway's development certificate when PGW_CACERT names it (as
.ci/run does), which is what a partner does with its gateway's CA.
"""

import json
import os
import sys

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkbssintl.v2 import ListSubCustomersRequest, QuerySubCustomerListReq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
from partner_sdk import PartnerExtensions, http_config  # noqa: E402

ENDPOINT = os.environ.get("PGW_ENDPOINT", "https://127.0.0.1:8443")
DEMO = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "demo.json")))
KEYS = {e["id"]: (e["access_key"], e["secret_key"]) for s in ("operators", "customers") for e in DEMO[s] if "access_key" in e}
PARTNER_OF = {o["id"]: o["partner"] for o in DEMO["operators"]}


def config():
    ca = os.environ.get("PGW_CACERT")
    if ca:
        return http_config(ca_cert=ca)
    c = http_config()
    c.ignore_ssl_verification = True
    return c


def connect(operator, domain_id=None):
    ak, sk = KEYS[operator]
    return PartnerExtensions.connect(ak, sk, domain_id or PARTNER_OF[operator], ENDPOINT, config())


def test_a_session_end_to_end_through_the_helper():
    ops = connect("op-east-ops")
    session = ops.create_session("cust-acme", ["om", "order"], duration_seconds=900)
    assert session["customer_id"] == "cust-acme"
    assert any(s["session_id"] == session["session_id"] for s in ops.list_sessions()["sessions"])

    inside = ops.inside(session)
    resources = inside.own_resources()
    assert resources["total_count"] >= 1
    resource = resources["resources"][0]["resource_id"]
    operated = inside.operate_resource(resource, "restart")
    assert operated["resource_id"] == resource
    placed = inside.place_order({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2",
                                 "product_id": "00301-ec2-c6.large.2", "period_type": 2, "period_num": 1,
                                 "amount": "100.00"})
    assert placed["source_type"] == 2, "placed on the customer's behalf"
    order = placed["order"]["order_id"]
    assert any(o["order_id"] == order for o in inside.own_orders()["order_infos"])

    # Partner-level calls from inside are refused through the SDK's own error path.
    with pytest.raises(ClientRequestException) as denied:
        inside.client.list_sub_customers(ListSubCustomersRequest(body=QuerySubCustomerListReq(limit=1)))
    assert denied.value.status_code == 403
    assert denied.value.error_code == "CBC.0151"
    assert denied.value.request_id

    # Switch back: the temporary credentials stop working.
    assert ops.end_session(session["session_id"]) == 204
    with pytest.raises(ClientRequestException) as dead:
        inside.own_resources()
    assert dead.value.status_code == 403


def test_the_domain_id_is_the_partner_id():
    """The natural mistake (the operator's own id as domain_id) is the
    uniform 401; the partner's id works."""
    with pytest.raises(ClientRequestException) as wrong:
        connect("op-east-ops", domain_id="op-east-ops").list_sessions()
    assert wrong.value.status_code == 401
    assert wrong.value.error_code == "APIGW.0301"
    assert wrong.value.request_id, "what support looks up (README: Diagnosing a 401)"
    assert connect("op-east-ops", domain_id="res-east").list_sessions() is not None
