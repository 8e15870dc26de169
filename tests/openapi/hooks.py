"""schemathesis hooks for fuzzing partner-gateway through its TLS front door.

Loaded by the schemathesis CLI (`tests/openapi/run` sets SCHEMATHESIS_HOOKS
to this file). It does three things:

1. Signs every generated request with the official SDK's signer
   (huaweicloudsdkcore 3.1.219: `GlobalCredentials.sign_request`, which adds
   X-Domain-Id and X-Security-Token and hands the request to `Signer`, the
   SDK-HMAC-SHA256 signer), as one of three roles (PGW_FUZZ_ROLE):

   - `operator`: a partner operator's AK/SK, with the operator's *partner* id
     as domain id (X-Domain-Id), as README "Calling it from the official
     SDK" says;
   - `customer`: a customer's own AK/SK, with its own id as domain id;
   - `session`: an assume-role session. The operator first calls
     `POST /v3/partner-sessions` (signed the same way), and every fuzzed
     request is then signed with the session's temporary AK/SK and carries
     its X-Security-Token, without a domain id, as examples/partner_sdk.py's
     `inside()` does. Should the fuzzing end that session (a 403 saying so),
     the next request switches in again.

   Why a `requests` auth object (`schemathesis.auth.set_from_requests`)
   rather than an `@schemathesis.auth` provider or a `before_call` hook:
   those two run on the *Case*, before schemathesis serializes it, so they
   would have to guess the body bytes and the query encoding. A `requests`
   auth is called by `requests` on the PreparedRequest, after the URL and
   the body are final and right before the bytes go out (schemathesis 4's
   requests transport passes it as `auth=`), so the signature covers exactly
   what is sent. It is also what schemathesis 4 documents for custom auth
   schemes, and it keeps schemathesis' own negative testing of security
   parameters (cases with the credentials deliberately left out are not
   signed, and must be 401). The CLI rather than a pytest runner: schemathesis
   4's CLI has the phases (examples, coverage, fuzzing, stateful), a time
   budget (--max-time), reports, and loads these hooks and checks by itself.

2. A check, `error_400_names_a_field`: every 400 has a JSON body with string
   `error_code` and `error_msg`, and the message names what was wrong: the
   gateway's wordings (`invalid parameter X: ...`, `invalid query parameter
   X: ...`, `X is required`, `invalid request body: ...`), or the name of a
   field of the request (a declared parameter, a property of the body
   schema, or a key of the generated request). PGW_FUZZ_400_ALLOW (a regex)
   lets known other wordings through.

3. A check, `refusal_changes_nothing`: a refused request (any 4xx) leaves
   the SQLite database (PGW_DB) as it was. See `DB_EXCLUDED` for what is
   left out of the comparison and why. The comparison needs one request at a
   time (`--workers 1`, as `run` does): a request of another worker could
   change the database in between.

Environment:
  PGW_FUZZ_ROLE      operator | customer | session (required)
  PGW_ENDPOINT       the gateway, e.g. https://127.0.0.1:8443 (used to
                     create the session; the CLI's --url is the fuzzed one)
  PGW_CACERT         PEM to trust for that call (default: system roots)
  PGW_DEMO           the demo data with the keys (default examples/demo.json)
  PGW_FUZZ_PRINCIPAL the operator (operator, session role) or customer
                     (customer role) to sign as; defaults: op-dist-admin,
                     cust-acme, op-east-ops
  PGW_FUZZ_AK, PGW_FUZZ_SK, PGW_FUZZ_DOMAIN_ID
                     keys not in the demo data (override PGW_FUZZ_PRINCIPAL;
                     an empty PGW_FUZZ_DOMAIN_ID sends none)
  PGW_FUZZ_SESSION_CUSTOMER  (default cust-acme), PGW_FUZZ_SESSION_SCOPES
                     (default om,order), PGW_FUZZ_SESSION_SECONDS (default 3600)
  PGW_DB             the gateway's SQLite file; unset: the DB check passes
  PGW_DB_EXCLUDE     more tables to leave out of the DB check (comma-separated)
  PGW_FUZZ_400_ALLOW a regex of 400 messages to accept without a field name
  PGW_FUZZ_STATS     a JSON file to write the status counts to at exit

By hand, e.g. to replay a failure (the curl lines schemathesis prints carry
a stale signature, or none): PGW_FUZZ_ROLE=operator PGW_ENDPOINT=...
PGW_CACERT=... python tests/openapi/hooks.py METHOD PATH?QUERY [BODY]
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import json
import os
import re
import sqlite3
import sys
import threading
import urllib.parse

import requests
import schemathesis
from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DEMO = os.path.join(HERE, "..", "..", "examples", "demo.json")
ROLES = ("operator", "customer", "session")
DEFAULT_PRINCIPAL = {"operator": "op-dist-admin", "customer": "cust-acme", "session": "op-east-ops"}

# Headers `requests` (urllib3) adds or computes itself. The SDK never has
# them in its header_params, so it never signs them (docs/wire-format.md 1.3).
NOT_SIGNED = {"accept", "accept-encoding", "connection", "content-length", "transfer-encoding"}
# Set by the signer; whatever schemathesis may have generated under these
# names is dropped so that the SDK sets them as it does for its own calls.
CREDENTIAL_HEADERS = {"authorization", "x-sdk-date", "x-security-token", "x-domain-id", "host"}


# --- credentials ---------------------------------------------------------

def _demo_keys():
    with open(os.environ.get("PGW_DEMO", DEFAULT_DEMO)) as f:
        demo = json.load(f)
    keys = {}
    for kind in ("operators", "customers"):
        for e in demo[kind]:
            if "access_key" in e:
                # An operator signs with its partner's id; a customer with its own.
                keys[e["id"]] = (e["access_key"], e["secret_key"], e.get("partner", e["id"]) if kind == "operators" else e["id"])
    return keys


def _long_term_credentials(role):
    """GlobalCredentials of the operator or customer PGW_FUZZ_ROLE signs as."""
    ak, sk = os.environ.get("PGW_FUZZ_AK"), os.environ.get("PGW_FUZZ_SK")
    if ak and sk:
        domain = os.environ.get("PGW_FUZZ_DOMAIN_ID") or None
    else:
        principal = os.environ.get("PGW_FUZZ_PRINCIPAL") or DEFAULT_PRINCIPAL[role]
        ak, sk, domain = _demo_keys()[principal]
        if "PGW_FUZZ_DOMAIN_ID" in os.environ:
            domain = os.environ["PGW_FUZZ_DOMAIN_ID"] or None
    return GlobalCredentials(ak, sk, domain) if domain else GlobalCredentials(ak, sk)


def sign_prepared(request: requests.PreparedRequest, credentials: GlobalCredentials) -> requests.PreparedRequest:
    """Signs `request` in place with the SDK, over exactly what will be sent.

    The SDK's own pipeline (Client.build_future_request) gives the signer the
    path, the query as (key, value) pairs, its header_params and the body
    bytes; it signs every header in header_params. Here the path and query are
    read from the final URL (decoded as the gateway reads them, `+` as a
    space), the headers are those schemathesis and `requests` put on the
    request except the transport's own (NOT_SIGNED), and the body is the
    final bytes. The SDK's changes to the headers (values trimmed, UTF-8 sent
    as latin-1 text) and the headers it adds are copied back.
    """
    body = request.body
    if body is not None and not isinstance(body, (bytes, str)):
        # A stream or generator: read it, so that what is hashed is what is sent.
        body = b"".join(body) if not hasattr(body, "read") else body.read()
    if isinstance(body, str):
        # http.client would encode a str body as latin-1; send and sign UTF-8.
        body = body.encode("utf-8")
    if body is not None and body is not request.body:
        request.body = body
        request.headers.pop("Transfer-Encoding", None)
        request.headers["Content-Length"] = str(len(body))

    for name in list(request.headers):
        if name.lower() in CREDENTIAL_HEADERS:
            del request.headers[name]
    header_params = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in NOT_SIGNED:
            continue
        if lower == "content-type" and not (value.startswith("application/json") or value.startswith("application/bson")):
            # The SDK would add `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` for
            # such a Content-Type, which the gateway refuses (401) whatever
            # the body: sent unsigned instead, so the body stays hashed and
            # the gateway's parser gets to see it.
            continue
        header_params[name] = value.decode("latin-1") if isinstance(value, bytes) else value

    url = urllib.parse.urlsplit(request.url)
    sdk_request = SdkRequest(
        method=request.method,
        schema=url.scheme,
        host=url.netloc,
        resource_path=url.path or "/",
        query_params=urllib.parse.parse_qsl(url.query, keep_blank_values=True),
        header_params=header_params,
        body=body,
    )
    credentials.sign_request(sdk_request)
    for name, value in sdk_request.header_params.items():
        request.headers[name] = value
    return request


class SdkSigner(requests.auth.AuthBase):
    """A `requests` auth: signs each PreparedRequest as the role, at the last
    moment, and notes the database state just before it is sent."""

    def __init__(self, role):
        if role not in ROLES:
            raise SystemExit(f"PGW_FUZZ_ROLE must be one of {', '.join(ROLES)}, not {role!r}")
        self.role = role
        self._lock = threading.Lock()
        self._credentials = None
        self.session = None
        self.sessions_ended = 0

    def credentials(self):
        with self._lock:
            if self._credentials is None:
                creds = _long_term_credentials(self.role)
                if self.role == "session":
                    self.session = start_session(creds)
                    c = self.session["credential"]
                    creds = GlobalCredentials(c["access"], c["secret"]).with_security_token(c["securitytoken"])
                self._credentials = creds
            return self._credentials

    def restart(self):
        with self._lock:
            self._credentials = None
            self.sessions_ended += 1

    def __call__(self, request):
        sign_prepared(request, self.credentials())
        request._pgw_signed = True
        if DB is not None:
            request._pgw_db_before = DB.before()
        return request


def start_session(operator_credentials):
    """POST /v3/partner-sessions as the operator: the session's answer
    ({"session_id", "credential": {"access", "secret", "securitytoken",
    "expires_at"}, ...})."""
    endpoint = os.environ.get("PGW_ENDPOINT")
    if not endpoint:
        raise SystemExit("PGW_FUZZ_ROLE=session needs PGW_ENDPOINT (the gateway the session is made on)")
    body = {
        "customer_id": os.environ.get("PGW_FUZZ_SESSION_CUSTOMER", "cust-acme"),
        "scopes": [s for s in os.environ.get("PGW_FUZZ_SESSION_SCOPES", "om,order").split(",") if s],
        "duration_seconds": int(os.environ.get("PGW_FUZZ_SESSION_SECONDS", "3600")),
    }
    prepared = requests.Request(
        "POST", endpoint.rstrip("/") + "/v3/partner-sessions",
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
    ).prepare()
    sign_prepared(prepared, operator_credentials)
    with requests.Session() as s:
        answer = s.send(prepared, verify=os.environ.get("PGW_CACERT") or True, timeout=30)
    if answer.status_code != 201:
        raise SystemExit(f"could not start a session: {answer.status_code} {answer.text}")
    session = answer.json()
    print(f"[pgw hooks] session {session['session_id']} into {body['customer_id']} "
          f"(scopes {','.join(body['scopes'])}) until {session['credential'].get('expires_at')}", file=sys.stderr)
    return session


# --- the database before and after a refused request ---------------------

# Left out of the comparison, with the reason (table -> columns, None = the
# whole table). On SQLite nothing the gateway does on a read or a refusal
# writes a table (rate limiting is in memory, the decision log is a file,
# accepted identity assertions are remembered in memory; PostgreSQL's
# `seen_assertions` table has no SQLite twin), so only the columns below
# are left out:
DB_EXCLUDED = {
    # An export (POST .../orders/export, 2xx) writes a `pending` row at once
    # and a background task completes it later, possibly while a later,
    # refused, request is in flight. A new row (or a change of its owner or
    # orders) is still seen.
    "export_tasks": {"status", "csv", "row_count", "error", "completed_at"},
    # Every gateway reports what it serves every 5 s (`policy fleet`): its
    # heartbeat, not the request's doing.
    "policy_gateways": None,
    # Not left out: `client_tokens` (a refused creating request gives its
    # X-Client-Token claim up, so none may remain; the upkeep only forgets
    # claims older than a day), `rate_limits` (written only by `limits set`),
    # `partner_sessions` (ending is a write; expiry is a comparison with
    # `expires_at`, never a write), `activities` (written with each change
    # a session makes, in its transaction), `sqlite_sequence`.
}


class DbState:
    """Digests of every table of the gateway's SQLite database, read through
    one read-only connection. `PRAGMA data_version` changes when another
    connection commits, so a request that committed nothing costs two pragma
    reads; the tables are read again only after a commit."""

    def __init__(self, path):
        self.path = path
        excluded = dict(DB_EXCLUDED)
        for t in filter(None, os.environ.get("PGW_DB_EXCLUDE", "").split(",")):
            excluded[t.strip()] = None
        self.excluded = excluded
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        self.lock = threading.Lock()
        self.cached = None  # (data_version, {table: digest})

    def _version(self):
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def _digests(self):
        digests = {}
        self.conn.execute("BEGIN")  # one snapshot for all tables
        try:
            tables = [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            for table in tables:
                skip = self.excluded.get(table, ())
                if skip is None:
                    continue
                columns = [r[1] for r in self.conn.execute(f'PRAGMA table_info("{table}")') if r[1] not in skip]
                h = hashlib.sha256()
                rows = self.conn.execute("SELECT {} FROM \"{}\"".format(", ".join(f'"{c}"' for c in columns), table))
                for row in sorted(repr(r) for r in rows):
                    h.update(row.encode())
                    h.update(b"\n")
                digests[table] = h.hexdigest()
        finally:
            self.conn.execute("COMMIT")
        return digests

    def before(self):
        with self.lock:
            version = self._version()
            if self.cached is None or self.cached[0] != version:
                self.cached = (version, self._digests())
            return self.cached

    def changed_since(self, before):
        """The tables whose rows differ from `before` (empty: none)."""
        with self.lock:
            version = self._version()
            if version == before[0]:
                return []
            self.cached = (version, self._digests())
            now = self.cached[1]
            return sorted(t for t in set(now) | set(before[1]) if now.get(t) != before[1].get(t))


DB = DbState(os.environ["PGW_DB"]) if os.environ.get("PGW_DB") else None
_last_before = threading.local()


@schemathesis.hook
def before_call(context, case, kwargs):
    # The state before an *unsigned* request (a case whose credentials
    # schemathesis left out on purpose): signed ones note it in SdkSigner.
    if DB is not None:
        _last_before.value = DB.before()


# --- the role's signer ---------------------------------------------------

SIGNER = SdkSigner(os.environ.get("PGW_FUZZ_ROLE", ""))
schemathesis.auth.set_from_requests(SIGNER)


# --- status counts -------------------------------------------------------

STATS = collections.Counter()
_stats_lock = threading.Lock()


@schemathesis.hook
def after_call(context, case, response):
    # Signed: went through SdkSigner. Unsigned: a case schemathesis sent
    # without credentials on purpose (negative testing of the security
    # scheme), which must be 401 (or a 400/404 that comes before it).
    signed = bool(getattr(response.request, "_pgw_signed", False))
    with _stats_lock:
        STATS[(f"{case.method.upper()} {case.operation.path}", response.status_code, signed)] += 1
    if signed and SIGNER.role == "session" and response.status_code == 403 and b"this session has ended" in response.content:
        # The fuzzing ended its own session (DELETE /v3/partner-sessions/{id}
        # from inside): switch in again, or every later request is a 403.
        print(f"[pgw hooks] the session ended ({response.content[:160]!r}); starting a new one", file=sys.stderr)
        SIGNER.restart()


def _write_stats():
    path = os.environ.get("PGW_FUZZ_STATS")
    if not path:
        return
    totals = {True: collections.Counter(), False: collections.Counter()}
    by_operation = collections.defaultdict(collections.Counter)
    for (operation, status, signed), n in STATS.items():
        totals[signed][status] += n
        by_operation[operation][f"{status}{'' if signed else ' unsigned'}"] += n
    with open(path, "w") as f:
        json.dump({
            "role": SIGNER.role,
            "sessions_ended_by_the_fuzzing": SIGNER.sessions_ended,
            "signed": {str(k): v for k, v in sorted(totals[True].items())},
            "unsigned": {str(k): v for k, v in sorted(totals[False].items())},
            "operations": {op: dict(sorted(c.items())) for op, c in sorted(by_operation.items())},
        }, f, indent=1)


atexit.register(_write_stats)


# --- checks --------------------------------------------------------------

def _resolve(root, node, seen):
    while isinstance(node, dict) and "$ref" in node and isinstance(node["$ref"], str) and node["$ref"].startswith("#/"):
        ref = node["$ref"]
        if ref in seen:
            return {}
        seen = seen | {ref}
        target = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
    return node


def _schema_names(root, node, names, seen=frozenset(), depth=0):
    """Property names anywhere in a JSON schema (local $refs followed)."""
    if depth > 20:
        return
    node = _resolve(root, node, seen)
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            names.update(props)
        for key, value in node.items():
            if key in ("properties", "patternProperties", "$defs", "definitions") and isinstance(value, dict):
                for sub in value.values():
                    _schema_names(root, sub, names, seen, depth + 1)
            elif isinstance(value, (dict, list)) and key not in ("example", "examples", "enum", "const", "default"):
                _schema_names(root, value, names, seen, depth + 1)
        if isinstance(node.get("required"), list):
            names.update(n for n in node["required"] if isinstance(n, str))
    elif isinstance(node, list):
        for item in node:
            _schema_names(root, item, names, seen, depth + 1)


def _value_names(value, names):
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                names.add(k)
            _value_names(v, names)
    elif isinstance(value, list):
        for v in value:
            _value_names(v, names)


_names_cache = {}


def request_field_names(case):
    """What a 400 may name: the operation's declared parameters and body
    properties, and the keys of the request as generated."""
    key = (case.method, case.operation.path)
    declared = _names_cache.get(key)
    if declared is None:
        declared = set()
        raw = case.operation.definition.raw if hasattr(case.operation.definition, "raw") else {}
        root = case.operation.schema.raw_schema
        path_item = _resolve(root, root.get("paths", {}).get(case.operation.path, {}), frozenset())
        for p in list(path_item.get("parameters", [])) + list(raw.get("parameters", [])):
            p = _resolve(root, p, frozenset())
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                declared.add(p["name"])
                _schema_names(root, p.get("schema", {}), declared)
        body = _resolve(root, raw.get("requestBody", {}), frozenset())
        for media in (body.get("content") or {}).values() if isinstance(body, dict) else ():
            _schema_names(root, media.get("schema", {}), declared)
        _names_cache[key] = declared
    names = set(declared)
    for container in (case.path_parameters, case.query, case.headers, case.cookies):
        if isinstance(container, dict):
            names.update(k for k in container if isinstance(k, str))
    _value_names(getattr(case, "body", None), names)
    return {n for n in names if n}


# The gateway's wordings that name the field (src/catalog/fields.rs):
# `invalid parameter X: ...` and `invalid query parameter X: ...` (caught
# by "parameter" above), `X is required` (X is absent from the request, so
# it is matched by shape), and `invalid request body: ...` (the body as a
# whole is not the expected JSON object).
FIELD_WORDING = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]-]* is required\b|^invalid request body\b")
# Known wordings to let through (a regex, PGW_FUZZ_400_ALLOW), e.g.
# '^Malformed request: ' for the normalizer's refusals of the target.
ALLOWED_400 = re.compile(os.environ["PGW_FUZZ_400_ALLOW"]) if os.environ.get("PGW_FUZZ_400_ALLOW") else None


@schemathesis.check
def error_400_names_a_field(ctx, response, case):
    """A 400 is `{"error_code": "...", "error_msg": "..."}` and its message
    names the field (or says "parameter")."""
    if response.status_code != 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"400 without a JSON body: {response.content[:200]!r}")
    if not isinstance(body, dict) or not isinstance(body.get("error_code"), str) or not isinstance(body.get("error_msg"), str):
        raise AssertionError(f"400 body is not {{error_code, error_msg}}: {response.content[:300]!r}")
    msg = body["error_msg"]
    if "parameter" in msg.lower() or FIELD_WORDING.search(msg):
        return None
    if ALLOWED_400 is not None and ALLOWED_400.search(msg):
        return None
    names = request_field_names(case)
    if any(re.search(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])", msg) for n in names):
        return None
    raise AssertionError(f"400 whose error_msg names no field: {body['error_code']} {msg!r}")


@schemathesis.check
def refusal_changes_nothing(ctx, response, case):
    """A 4xx leaves the database as it was (PGW_DB; tables in DB_EXCLUDED aside)."""
    if DB is None or not 400 <= response.status_code < 500:
        return None
    before = getattr(response.request, "_pgw_db_before", None) or getattr(_last_before, "value", None)
    if before is None:
        return None
    changed = DB.changed_since(before)
    if changed:
        raise AssertionError(f"a refused request ({response.status_code}) changed the database: tables {', '.join(changed)}")
    return None


# --- by hand: `python hooks.py METHOD PATH [JSON]` (signed as the role) --

if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: PGW_FUZZ_ROLE=... PGW_ENDPOINT=... python hooks.py METHOD PATH [JSON]")
    method, path = sys.argv[1], sys.argv[2]
    data = sys.argv[3].encode() if len(sys.argv) > 3 else None
    prepared = requests.Request(method, os.environ["PGW_ENDPOINT"].rstrip("/") + path, data=data,
                                headers={"Content-Type": "application/json"}).prepare()
    SIGNER(prepared)
    with requests.Session() as s:
        r = s.send(prepared, verify=os.environ.get("PGW_CACERT") or True, timeout=30)
    print(r.status_code, r.text)
