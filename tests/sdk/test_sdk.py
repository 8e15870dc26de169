"""The official Python SDK (huaweicloudsdkbssintl) against `partner-gateway serve --demo`.

Run by .ci/run after the Rust suite, with PGW_ENDPOINT pointing at a gateway
started with the demo data. Every public-API route is called through the SDK:
allowed calls must succeed and parse into the SDK's models; a denied call must
raise the SDK's ClientRequestException with CBC.0151.
"""

import decimal
import json
import os

import pytest
from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkbssintl.v2 import *  # noqa: F401,F403  (BssintlClient and the request/model classes)

ENDPOINT = os.environ.get("PGW_ENDPOINT", "https://127.0.0.1:8443")
DEMO = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "demo.json")))
KEYS = {e["id"]: (e["access_key"], e["secret_key"]) for s in ("operators", "customers") for e in DEMO[s] if "access_key" in e}
PARTNER_OF = {o["id"]: o["partner"] for o in DEMO["operators"]}


def client(principal, domain=True):
    ak, sk = KEYS[principal]
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    creds = GlobalCredentials(ak, sk, PARTNER_OF[principal]) if domain else GlobalCredentials(ak, sk)
    return BssintlClient.new_builder().with_http_config(config).with_credentials(creds).with_endpoint(ENDPOINT).build()


DIST_ADMIN = "op-dist-admin"
EAST_ADMIN = "op-east-admin"
EAST_FINANCE = "op-east-finance"


def test_list_sub_customers():
    resp = client(DIST_ADMIN).list_sub_customers(ListSubCustomersRequest(body=QuerySubCustomerListReq(offset=0, limit=10, association_type="3")))
    assert resp.count >= 1
    assert all(c.association_type == "3" for c in resp.customer_infos)
    assert all(isinstance(c.is_frozen, int) for c in resp.customer_infos)


def test_show_sub_customer_budget():
    resp = client(EAST_FINANCE).show_sub_customer_budget(ShowSubCustomerBudgetRequest(customer_id="cust-acme"))
    assert isinstance(resp.budget_amount, decimal.Decimal)
    assert resp.budget_type in ("MONTHLY", "PACKAGE")


def test_list_sub_customer_budget():
    resp = client(EAST_ADMIN).list_sub_customer_budget(ListSubCustomerBudgetRequest(body=ListSubCustomerBudgetReq(customer_ids=["cust-acme", "cust-birch"])))
    assert {b.customer_id for b in resp.budget_infos} == {"cust-acme", "cust-birch"}


def test_update_budget_and_list_records():
    c = client(EAST_FINANCE)
    c.update_sub_customer_budget(UpdateSubCustomerBudgetRequest(body=ModSubCustomerBudgetReq(
        customer_id="cust-acme", budget_amount=decimal.Decimal("750.00"), budget_type="MONTHLY", cancel_partner_frozen="0")))
    shown = c.show_sub_customer_budget(ShowSubCustomerBudgetRequest(customer_id="cust-acme"))
    assert shown.budget_amount == decimal.Decimal("750.00")
    records = c.list_sub_customer_budget_records(ListSubCustomerBudgetRecordsRequest(customer_id="cust-acme", offset=0, limit=10))
    assert records.total_count >= 1
    assert any(r.budget_amount == decimal.Decimal("750.00") for r in records.record_list)


@pytest.mark.parametrize("amount", [100, 100.5, "100", "100.00", decimal.Decimal("100.25")])
def test_update_budget_with_the_values_users_write(amount):
    """A user writes budget_amount=100 (the SDK sends a JSON integer), 100.5,
    or a string: each sets the budget exactly."""
    c = client(EAST_FINANCE)
    c.update_sub_customer_budget(UpdateSubCustomerBudgetRequest(body=ModSubCustomerBudgetReq(
        customer_id="cust-birch", budget_amount=amount, budget_type="MONTHLY")))
    shown = c.show_sub_customer_budget(ShowSubCustomerBudgetRequest(customer_id="cust-birch"))
    assert shown.budget_amount == decimal.Decimal(str(amount))


def test_update_budget_refuses_an_inexact_amount():
    with pytest.raises(ClientRequestException) as refused:
        client(EAST_FINANCE).update_sub_customer_budget(UpdateSubCustomerBudgetRequest(body=ModSubCustomerBudgetReq(
            customer_id="cust-birch", budget_amount=decimal.Decimal("100.123"))))
    assert refused.value.status_code == 400
    assert refused.value.error_code == "CBC.0100"
    assert "budget_amount" in refused.value.error_msg


def test_freeze_and_unfreeze():
    c = client("op-dist-finance")
    c.freeze_sub_customers(FreezeSubCustomersRequest(body=FreezeSubCustomersReq(customer_ids=["cust-orbit"], reason="arrears", freeze_type="ACCOUNT")))
    listed = c.list_sub_customers(ListSubCustomersRequest(body=QuerySubCustomerListReq(customer_id="cust-orbit", limit=10)))
    assert listed.customer_infos[0].is_frozen == 1
    c.unfreeze_sub_customers(UnfreezeSubCustomersRequest(body=UnfreezeSubCustomersReq(customer_ids=["cust-orbit"], reason="paid", unfreeze_type="ACCOUNT")))


def test_list_customer_orders_and_details():
    c = client(EAST_ADMIN)
    orders = c.list_customer_orders(ListCustomerOrdersRequest(customer_id="cust-acme", limit=10, offset=0))
    assert orders.total_count >= 1
    order_id = orders.order_infos[0].order_id
    details = c.show_customer_order_details(ShowCustomerOrderDetailsRequest(order_id=order_id))
    assert details.order_info.order_id == order_id


def test_resource_queries():
    c = client("op-east-ops")
    on_demand = c.list_customer_on_demand_resources(ListCustomerOnDemandResourcesRequest(body=QueryCustomerOnDemandResourcesReq(customer_id="cust-acme", offset=0, limit=10)))
    assert on_demand.total_count >= 1
    yearly = c.list_pay_per_use_customer_resources(ListPayPerUseCustomerResourcesRequest(body=QueryResourcesReq(customer_id="cust-acme", offset=0, limit=10)))
    assert yearly.total_count >= 1


def test_list_indirect_partners():
    resp = client(DIST_ADMIN).list_indirect_partners(ListIndirectPartnersRequest(body=QueryIndirectPartnersReq(offset=0, limit=10)))
    assert resp.count == 2


def test_denied_call_raises_cbc_0151():
    with pytest.raises(ClientRequestException) as denied:
        client("op-west-admin").show_sub_customer_budget(ShowSubCustomerBudgetRequest(customer_id="cust-acme"))
    assert denied.value.status_code == 403
    assert denied.value.error_code == "CBC.0151"
    assert denied.value.request_id


def test_without_domain_id():
    resp = client(DIST_ADMIN, domain=False).list_indirect_partners(ListIndirectPartnersRequest(body=QueryIndirectPartnersReq()))
    assert resp.count == 2


def generic_call(c, method, path, body=None):
    """The SDK's own request machinery (signing included) for routes it has no model for.

    The SDK needs a response model; UpdateSubCustomerBudgetResponse has no
    fields, so the answer comes back whole in `raw_content`."""
    resp = c.do_http_request(method=method, resource_path=path, header_params={"Content-Type": "application/json"},
                             body=body, response_type="UpdateSubCustomerBudgetResponse")
    return resp.status_code, json.loads(resp.raw_content or b"null")


def test_assume_role_then_act_with_temporary_credentials():
    status, created = generic_call(client("op-dist-ops"), "POST", "/v3/partner-sessions",
                                   {"customer_id": "cust-nova", "scopes": ["om", "order"], "duration_seconds": 900})
    assert status == 201, created
    cred = created["credential"]
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    temp = GlobalCredentials(cred["access"], cred["secret"]).with_security_token(cred["securitytoken"])
    inside = BssintlClient.new_builder().with_http_config(config).with_credentials(temp).with_endpoint(ENDPOINT).build()
    status, resources = generic_call(inside, "GET", "/v2/customer/resources")
    assert status == 200, resources
    status, placed = generic_call(inside, "POST", "/v2/customer/orders",
                                  {"charging": "pay_per_use", "service_type_code": "hws.service.type.obs", "product_id": "obs-standard"})
    assert status == 201, placed
    assert placed["source_type"] == 2
    # Inside the session, partner-level calls are refused by the SDK's error path.
    with pytest.raises(ClientRequestException) as denied:
        inside.list_sub_customers(ListSubCustomersRequest(body=QuerySubCustomerListReq(limit=1)))
    assert denied.value.error_code == "CBC.0151"
    # Switch back: the temporary credentials stop working.
    status, _ = generic_call(client("op-dist-ops"), "DELETE", "/v3/partner-sessions/" + created["session_id"])
    assert status == 204
    with pytest.raises(ClientRequestException) as dead:
        generic_call(inside, "GET", "/v2/customer/resources")
    assert dead.value.status_code == 403
