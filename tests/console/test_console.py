"""The console in a real headless browser (Debian's chromium and
chromium-driver, driven by selenium) against `serve --demo`.

Environment: PGW_ADMIN (the admin listener, http://127.0.0.1:19090),
PGW_ENDPOINT (the gateway), PGW_BIN (the partner-gateway binary, for signed
calls), PGW_SCREENSHOTS (where screenshots go).
"""

import json
import os
import pathlib
import subprocess

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ADMIN = os.environ.get("PGW_ADMIN", "http://127.0.0.1:19090")
ENDPOINT = os.environ.get("PGW_ENDPOINT", "https://127.0.0.1:18443")
BIN = os.environ.get("PGW_BIN", "target/debug/partner-gateway")
SHOTS = pathlib.Path(os.environ.get("PGW_SCREENSHOTS", "target/console-screenshots"))
EAST_ADMIN = ("DEMOEASTADMIN0000000", "demo-secret-east-admin-xxxxxxxxxxxxxxxxx")
WAIT = 15  # seconds, the bound of every wait on the page


def call(ak, sk, method, path, body=None, token=None):
    """A signed call through the CLI: (status, JSON body or None)."""
    return call_with_id(ak, sk, method, path, body, token)[:2]


def call_with_id(ak, sk, method, path, body=None, token=None):
    """A signed call through the CLI: (status, JSON body or None, X-Request-Id)."""
    args = [BIN, "call", "--endpoint", ENDPOINT, "--insecure", "--ak", ak, "--sk", sk]
    if token:
        args += ["--security-token", token]
    args += [method, path] + ([json.dumps(body)] if body is not None else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    # The status on stderr's first line, the JSON body alone on stdout.
    status = int(done.stderr.split()[0])
    request_id = next((line.split(": ", 1)[1] for line in done.stderr.splitlines()
                       if line.startswith("x-request-id: ")), None)
    return status, (json.loads(done.stdout) if done.stdout.strip() else None), request_id


def new_session():
    status, body = call(*EAST_ADMIN, "POST", "/v3/partner-sessions",
                        {"customer_id": "cust-acme", "scopes": ["om"], "duration_seconds": 900})
    assert status == 201, body
    return body


def as_session(session, method, path):
    c = session["credential"]
    return call(c["access"], c["secret"], method, path, token=c["securitytoken"])[0]


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860"]:
        options.add_argument(arg)
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if os.path.exists(chromium):
        options.binary_location = chromium
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")),
                              options=options)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def open_view(browser, view):
    # From a blank page: a hash change alone would not load the page afresh.
    browser.get("about:blank")
    browser.get(f"{ADMIN}/console#{view}")
    WebDriverWait(browser, WAIT).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == view)
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None, \
        browser.find_element(By.ID, "error").text


def shot(browser, name):
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def rows(browser, selector):
    return browser.find_elements(By.CSS_SELECTOR, selector)


def column(browser, n):
    """The text of cell `n` of every listed decision, read at once (the
    table is re-rendered under the test)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('#decisions tr.decision')]"
        ".map(r => r.cells[arguments[0]].textContent)", n)


def test_decisions_view_lists_and_filters(browser):
    new_session()  # at least one allowed AssumeRole decision
    call(*EAST_ADMIN, "GET", "/v2/partners/sub-customers/cust-kite/overview")  # a deny
    open_view(browser, "decisions")
    assert column(browser, 2), "recent decisions are listed"
    # Determining policies show as file:line with their text.
    summaries = browser.execute_script(
        "return [...document.querySelectorAll('#decisions details.policy summary')].map(s => s.textContent)")
    assert any(".cedar:" in s for s in summaries), summaries
    shot(browser, "decisions")
    form = browser.find_element(By.ID, "decision-filter")
    form.find_element(By.NAME, "action").send_keys("AssumeRole")
    form.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(browser, WAIT).until(
        lambda d: set(column(d, 2)) == {"AssumeRole"} and set(column(d, 4)) == {"allow"})
    form.find_element(By.NAME, "action").clear()
    browser.find_element(By.CSS_SELECTOR, "#decision-filter select option[value='deny']").click()
    form.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(browser, WAIT).until(lambda d: set(column(d, 4)) == {"deny"})
    # Support gets a request id from the SDK's exception: it finds that one
    # decision, with the context that decided (here the budget asked for,
    # for a customer out of reach: denied, nothing changes).
    browser.find_element(By.CSS_SELECTOR, "#decision-filter select option[value='']").click()
    status, _, request_id = call_with_id(*EAST_ADMIN, "POST", "/v2/partners/sub-customers/budget",
                                         {"customer_id": "cust-kite", "budget_amount": 123.45,
                                          "budget_type": "MONTHLY"})
    assert request_id, status
    form.find_element(By.NAME, "request_id").send_keys(request_id)
    form.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(browser, WAIT).until(lambda d: column(d, 7) and all(request_id in c for c in column(d, 7)))
    assert len(column(browser, 7)) == 1
    assert "123.45" in column(browser, 7)[0], column(browser, 7)


def test_shadow_view_renders(browser):
    open_view(browser, "shadow")
    assert "shadow" in browser.find_element(By.ID, "shadow-state").text.lower()
    shot(browser, "shadow")


def test_policies_view_shows_the_set_and_its_proofs(browser):
    open_view(browser, "policies")
    card = browser.find_element(By.CSS_SELECTOR, ".policy-set")
    assert "version" in card.text and "proved" in card.text, card.text
    # Every policy, with the live decisions it determined.
    WebDriverWait(browser, WAIT).until(lambda d: rows(d, "tr.policy-count"))
    assert "R1-operator-views-customer-data" in browser.find_element(By.ID, "policy-counts").text
    shot(browser, "policies")


def test_fleet_view_lists_this_gateway(browser):
    open_view(browser, "fleet")
    WebDriverWait(browser, WAIT).until(lambda d: rows(d, "tr.gateway"))
    text = browser.find_element(By.ID, "fleet").text
    assert "(this one)" in text and "proved" in text and "(files)" in text, text
    assert "Nothing is published" in browser.find_element(By.ID, "publications").text
    shot(browser, "fleet")


def test_explain_form_answers_single_and_list_questions(browser):
    open_view(browser, "explain")
    form = browser.find_element(By.ID, "explain-form")
    form.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(browser, WAIT).until(lambda d: rows(d, ".explain-decision"))
    assert "allow" in browser.find_element(By.CSS_SELECTOR, ".explain-decision").text
    assert ".cedar:" in browser.find_element(By.ID, "explain-answer").text
    resource = form.find_element(By.NAME, "resource")
    resource.clear()
    resource.send_keys("Customer")
    form.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(browser, WAIT).until(lambda d: rows(d, ".residual-filter"))
    assert "partner" in browser.find_element(By.CSS_SELECTOR, ".residual-filter").text.lower()
    shot(browser, "explain")


def test_graph_view_draws_a_partner(browser):
    open_view(browser, "graph")
    text = browser.find_element(By.CSS_SELECTOR, "#graph svg").text
    # cust-ember's authorization was approved and has expired: shown as expired.
    for expected in ["dist-north", "res-east", "res-west", "cust-acme", "cust-nova", "approved", "expired"]:
        assert expected in text, (expected, text)
    shot(browser, "graph")


def test_ending_a_session_from_the_page_kills_its_credentials(browser):
    session = new_session()
    sid = session["session_id"]
    assert as_session(session, "GET", "/v2/customer/resources") == 200
    open_view(browser, "sessions")
    row = browser.find_element(By.CSS_SELECTOR, f"tr.session[data-session='{sid}']")
    assert "cust-acme" in row.text and "op-east-admin" in row.text
    shot(browser, "sessions")
    row.find_element(By.CSS_SELECTOR, "button.end-session").click()
    WebDriverWait(browser, WAIT).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, f"tr.session[data-session='{sid}']"))
    status = as_session(session, "GET", "/v2/customer/resources")
    assert status in (401, 403), status
