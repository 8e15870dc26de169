// The console: one page, a view per hash (#decisions, #shadow, ...), each
// filled from the admin listener's JSON. Data goes into the page as text
// nodes only (never as HTML).
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(path, options) {
  const res = await fetch(path, options);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error_msg || `${res.status} ${res.statusText}`);
  return body;
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function showError(e) {
  const p = $("#error");
  p.textContent = e ? String(e.message || e) : "";
  p.hidden = !e;
}

function decisionCell(d) {
  return el("td", { class: d }, d);
}

function policyList(determining) {
  return (determining || []).map((p) =>
    typeof p === "string"
      ? el("div", {}, p)
      : el("details", { class: "policy" },
          el("summary", {}, p.location ? `${p.id} (${p.location})` : p.id),
          el("pre", {}, p.text || "(text unavailable)")));
}

function fill(tbody, rows, empty) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 9, class: "muted" }, empty))]));
}

// A refused reload as people read it: when, and each problem on a line.
function reloadError(e) {
  if (!e) return el("div", {}, "last reload error: none");
  return el("div", { class: "deny" }, `last reload error (${e.at}):`,
    el("ul", {}, (e.issues || []).map((l) => el("li", {}, l))),
    (e.counterexamples || []).map((c) => el("details", {},
      el("summary", {}, "counterexample (a decision test)"), el("pre", {}, JSON.stringify(c, null, 2)))));
}

const views = {
  async decisions() {
    const params = new URLSearchParams(new FormData($("#decision-filter")));
    const { decisions } = await api(`/console/api/decisions?${params}`);
    fill($("#decisions tbody"), decisions.map((d) => el("tr", { class: "decision" },
      el("td", {}, (d.ts || "").replace("T", " ").replace("Z", "")),
      el("td", {}, d.principal || ""),
      el("td", {}, d.action || ""),
      el("td", {}, (d.resources || []).join(", ")),
      decisionCell(d.decision),
      el("td", {}, d.status),
      el("td", {}, policyList(d.determining)),
      el("td", { class: "request" }, el("div", { class: "request-id" }, d.request_id || ""),
        d.context ? el("code", { class: "context" }, JSON.stringify(d.context)) : ""))), "No decision yet.");
  },

  async shadow() {
    const { configured, disagreements } = await api("/console/api/shadow");
    $("#shadow-state").textContent = configured
      ? `${disagreements.length} recent disagreement(s) between the live and the shadow policy set.`
      : "No shadow policy set is configured (--shadow-policies, or policy publish --shadow).";
    const side = (s) => el("td", {}, el("span", { class: s.decision }, s.decision), " ",
      el("span", { class: "muted" }, (s.determining || []).join(", ") || "(no policy)"));
    fill($("#shadow tbody"), disagreements.map((d) => el("tr", {},
      el("td", {}, d.ts), el("td", {}, d.principal), el("td", {}, d.action), el("td", {}, d.resource),
      side(d.live), side(d.shadow))), "No disagreement.");
  },

  async sessions() {
    const { sessions } = await api("/console/api/sessions");
    fill($("#sessions tbody"), sessions.map((s) => el("tr", { class: "session", "data-session": s.id },
      el("td", {}, s.id), el("td", {}, s.operator), el("td", {}, s.customer),
      el("td", {}, s.scopes.join(", ")), el("td", {}, s.expires_at),
      el("td", {}, el("button", {
        class: "danger end-session",
        onclick: async () => {
          try { await post(`/console/api/sessions/${encodeURIComponent(s.id)}/end`, {}); await views.sessions(); }
          catch (e) { showError(e); }
        },
      }, "End session")))), "No live session.");
  },

  async policies() {
    const status = await api("/console/api/status");
    const card = (title, s) => {
      if (!s) return null;
      const inv = s.invariants || {};
      return el("div", { class: "card policy-set" },
        el("h3", {}, title),
        el("div", {}, `version ${s.version} · ${s.count} policies · loaded ${s.loaded_at}`),
        el("div", { class: "muted" }, `${s.policies_dir} · reloads applied ${s.reloads_applied}, failed ${s.reloads_failed}`),
        el("div", {}, "last reload: ", s.last_reload ? `${s.last_reload.at}: ${s.last_reload.result}` : "none since start"),
        reloadError(s.last_reload_error),
        el("div", { class: inv.proved ? "allow" : "deny" },
          `invariants: ${inv.count ?? 0} ${inv.proved ? "proved" : "NOT proved"}`),
        (inv.problems || []).map((p) => el("pre", { class: "deny" }, typeof p === "string" ? p : JSON.stringify(p, null, 2))),
        (inv.counterexamples || []).map((c) => el("details", { open: "" },
          el("summary", {}, "counterexample"), el("pre", {}, JSON.stringify(c, null, 2)))));
    };
    $("#policies").replaceChildren(...[card("Live", status.policies), card("Shadow", status.shadow_policies)].filter(Boolean));
    // Coverage on live traffic: how many decisions each policy determined.
    const { policies } = await api("/console/api/policies");
    fill($("#policy-counts tbody"), policies.map((p) => el("tr", { class: "policy-count" },
      el("td", {}, p.id), el("td", {}, p.effect), el("td", { class: "muted" }, p.location),
      el("td", { class: p.determined ? "" : "muted" }, p.determined),
      el("td", { class: "muted" }, p.comment || ""))), "No policy.");
  },

  async fleet() {
    const { instance, gateways, publications } = await api("/console/api/fleet");
    const now = Date.now();
    fill($("#fleet tbody"), gateways.map((g) => el("tr", { class: "gateway" },
      el("td", {}, g.instance, g.instance === instance ? el("span", { class: "muted" }, " (this one)") : null),
      el("td", {}, g.host),
      el("td", {}, g.version, el("span", { class: "muted" }, g.seq === null ? " (files)" : ` (#${g.seq})`)),
      el("td", {}, g.since),
      el("td", { class: g.proved ? "allow" : "deny" }, g.proved ? "proved" : "NOT proved"),
      el("td", {}, g.shadow_version ? `${g.shadow_version}: ${g.shadow_flips} flip(s)` : ""),
      el("td", {}, `${Math.round((now - Date.parse(g.last_seen)) / 1000)} s ago`),
      el("td", { class: g.problem ? "deny" : "" }, g.problem || ""))), "No gateway has reported.");
    fill($("#publications tbody"), publications.map((p) => el("tr", { class: "publication" },
      el("td", {}, `#${p.seq}`), el("td", {}, p.stage), el("td", {}, p.version), el("td", {}, p.published_at),
      el("td", {}, `${p.author}@${p.host}`), el("td", {}, p.message),
      el("td", { class: "muted" }, [p.copied_from ? `content of #${p.copied_from}` : "", p.invariant_change ? `invariant change: ${p.invariant_change}` : ""].filter(Boolean).join("; ")))),
      "Nothing is published (partner-gateway policy publish).");
  },

  async explain() {},

  async graph() {
    const select = $("#graph-partner");
    if (!select.options.length) {
      const { partners } = await api("/console/api/partners");
      for (const p of partners.filter((p) => p.kind !== "reseller")) select.append(el("option", { value: p.id }, `${p.name} (${p.id})`));
      for (const p of partners.filter((p) => p.kind === "reseller")) select.append(el("option", { value: p.id }, `${p.name} (${p.id})`));
    }
    if (select.value) await drawGraph(select.value);
  },
};

async function explain(ev) {
  ev.preventDefault();
  const form = new FormData(ev.target);
  let context;
  try { context = JSON.parse(form.get("context") || "{}"); }
  catch (e) { showError(new Error(`context is not JSON: ${e.message}`)); return; }
  const answer = await post("/v1/explain", {
    principal: form.get("principal"), action: form.get("action"), resource: form.get("resource"), context,
  });
  const out = $("#explain-answer");
  const parts = [el("h3", { class: "explain-decision" }, "decision: ", el("span", { class: answer.decision === "deny" || answer.decision === "none" ? "deny" : "allow" }, answer.decision))];
  if (answer.sql !== undefined || answer.filter !== undefined) {
    parts.push(el("div", {}, "list filter (SQL over the item table):"), el("pre", { class: "residual-filter" }, answer.sql || "(none: decided item by item)"));
    for (const r of answer.residuals || []) parts.push(el("div", { class: "muted" }, `${r.effect} ${r.id} (${r.file}:${r.line}): ${r.residual}`));
  }
  for (const p of answer.determining || []) {
    parts.push(el("div", {}, `${p.effect} ${p.id} `, el("span", { class: "muted" }, `${p.file}:${p.line}`), p.comment ? el("div", { class: "muted" }, p.comment) : null));
  }
  parts.push(el("details", {}, el("summary", {}, "full answer"), el("pre", {}, JSON.stringify(answer, null, 2))));
  out.replaceChildren(...parts);
}

// distributor → resellers → customers, one row per customer.
async function drawGraph(partner) {
  const g = await api(`/console/api/graph?partner=${encodeURIComponent(partner)}`);
  const NS = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  };
  const ROW = 46, W = 270, H = 36, X = [10, 320, 630];
  const svg = svgEl("svg", {});
  const nodes = [], edges = [];
  let row = 0;
  const place = (col, y, cls, title, sub) => {
    const n = svgEl("g", { class: `node ${cls}`, transform: `translate(${X[col]},${y})` });
    n.append(svgEl("rect", { width: W, height: H, rx: 5 }), svgEl("text", { x: 8, y: 15 }, title), svgEl("text", { x: 8, y: 30, class: "muted", fill: "#6b7280" }, sub));
    nodes.push(n);
    return { x: X[col], y };
  };
  const link = (a, b) => edges.push(svgEl("path", { class: "edge", d: `M${a.x + W},${a.y + H / 2} C${a.x + W + 25},${a.y + H / 2} ${b.x - 25},${b.y + H / 2} ${b.x},${b.y + H / 2}` }));
  const customerNode = (c, owner) => {
    const auth = c.authorizations.map((a) => `${a.status}${a.expired ? " (expired)" : ""}[${a.scopes.join("+")}]`).join(" ") || "no authorization";
    const live = c.sessions.length ? ` · ${c.sessions.length} live session(s)` : "";
    const at = place(2, 10 + row++ * ROW, `customer ${c.frozen ? "frozen" : ""}`, `${c.id} (${c.association})`, `${auth}${live}`);
    link(owner, at);
  };
  const [root, ...resellers] = g.partners;
  const rootY = 10;
  const rootAt = { x: X[0], y: rootY };
  const rowsStart = row;
  // The partner's own customers first, then each reseller with its customers.
  for (const c of root.customers) customerNode(c, rootAt);
  for (const r of resellers) {
    const first = row;
    const ry = 10 + first * ROW;
    const grants = r.grants ? Object.entries(r.grants).filter(([, v]) => v).map(([k]) => k).join(", ") || "no grants" : "";
    const at = place(1, ry, "reseller", `${r.name} (${r.id})`, `grants: ${grants}`);
    link(rootAt, at);
    if (!r.customers.length) row++;
    for (const c of r.customers) customerNode(c, at);
  }
  place(0, rootY, root.kind, `${root.name} (${root.id})`, root.kind);
  const height = Math.max(row, rowsStart + 1) * ROW + 20;
  svg.setAttribute("width", X[2] + W + 20);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${X[2] + W + 20} ${height}`);
  svg.append(...edges, ...nodes);
  $("#graph").replaceChildren(svg);
}

// Decisions and disagreements follow the traffic: read again every few
// seconds while their view is open.
const LIVE = new Set(["decisions", "shadow", "fleet"]);
let timer = null;

async function show() {
  const name = (location.hash || "#decisions").slice(1);
  const view = views[name] ? name : "decisions";
  clearInterval(timer);
  if (LIVE.has(view)) timer = setInterval(() => views[view]().catch(showError), 5000);
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== `view-${view}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  showError(null);
  try { await views[view](); document.body.dataset.ready = view; }
  catch (e) { showError(e); }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("#decision-filter").addEventListener("submit", (ev) => { ev.preventDefault(); views.decisions().catch(showError); });
  $("#explain-form").addEventListener("submit", (ev) => explain(ev).catch(showError));
  $("#graph-form").addEventListener("submit", (ev) => { ev.preventDefault(); drawGraph($("#graph-partner").value).catch(showError); });
  window.addEventListener("hashchange", show);
  try {
    const status = await api("/console/api/status");
    $("#version").textContent = `policy set ${status.policies.version}`;
  } catch (e) { showError(e); }
  show();
});
