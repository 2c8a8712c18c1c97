// The admin dashboard: GET /admin/dashboard is one self-contained page (no external assets; its
// script and style carry a per-response CSP nonce) that asks for the operator token, keeps it in
// the tab's sessionStorage and sends it as x-admin-token, never in a URL. The page itself holds
// no data, so it is public; GET /admin/api/dashboard-data (operator) is what it polls.
#include "control/service.h"
#include "core/crypto.h"
#include "net/http.h"

namespace edgecoder::control {

namespace detail {

using nlohmann::json;

// The page; @NONCE@ is replaced per response.
constexpr std::string_view kDashboardHtml = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>EdgeCoder control plane</title>
<style nonce="@NONCE@">
:root{--bg:#0f1419;--card:#182029;--line:#2a3542;--fg:#dde4ea;--dim:#8a99a8;--ok:#3fb27f;--bad:#e5534b;--acc:#4c9aff}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;align-items:center;gap:16px;padding:12px 20px;border-bottom:1px solid var(--line)}
header h1{font-size:17px;margin:0}header .dim{margin-left:auto}
main{padding:16px 20px;display:grid;gap:16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px}
.card,section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card b{display:block;font-size:22px}.dim{color:var(--dim)}h2{font-size:15px;margin:0 0 8px}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line)}
th{color:var(--dim);font-weight:500}.ok{color:var(--ok)}.bad{color:var(--bad)}
button{background:var(--acc);color:#fff;border:0;border-radius:5px;padding:5px 11px;cursor:pointer}
button.danger{background:var(--bad)}button.plain{background:transparent;border:1px solid var(--line);color:var(--fg)}
input{background:#0b1015;color:var(--fg);border:1px solid var(--line);border-radius:5px;padding:6px 8px}
#login{max-width:420px;margin:80px auto}#login form{display:flex;gap:8px}#login input{flex:1}
#toast{position:fixed;right:16px;bottom:16px;padding:10px 14px;border-radius:6px;background:var(--card);border:1px solid var(--line);display:none}
.hidden{display:none}
</style></head>
<body>
<header><h1>EdgeCoder control plane</h1><span id="mode" class="dim"></span>
<span class="dim" id="updated"></span><button id="logout" class="plain hidden">Sign out</button></header>
<div id="login" class="card"><h2>Operator sign-in</h2>
<p class="dim">Paste the operator token (ADMIN_API_TOKEN; <code>edgecoder token show admin</code>). It stays in this tab only.</p>
<form id="login-form"><input id="token" type="password" autocomplete="off" placeholder="operator token" required><button id="login-button" type="submit">Sign in</button></form>
<p id="login-error" class="bad"></p></div>
<main id="app" class="hidden">
<div class="cards">
<div class="card"><span class="dim">Agents online</span><b id="agents-online">-</b><span class="dim" id="agents-total"></span></div>
<div class="card"><span class="dim">Queued subtasks</span><b id="queued">-</b></div>
<div class="card"><span class="dim">Results recorded</span><b id="results">-</b><span class="dim" id="throughput"></span></div>
<div class="card"><span class="dim">Rollouts</span><b id="rollout-count">-</b></div>
</div>
<section><h2>Agents</h2><table id="agents"><thead><tr><th>Agent</th><th>Status</th><th>OS</th><th>Model</th><th>Approval</th><th>Power</th></tr></thead><tbody></tbody></table></section>
<section><h2>Rollouts</h2><table id="rollouts"><thead><tr><th>Rollout</th><th>Model</th><th>Stage</th><th>Progress</th><th>Failed</th><th>Agents</th><th></th></tr></thead><tbody></tbody></table></section>
<section><h2>Blacklist</h2><table id="blacklist"><thead><tr><th>Agent</th><th>Reason</th><th>Reporter</th><th>Since</th></tr></thead><tbody></tbody></table></section>
<section><h2>Credits</h2><form id="credits-form"><input id="account" placeholder="account id" required> <button type="submit">Look up</button></form>
<p id="credits-result" class="dim"></p>
<table id="adjustments"><thead><tr><th>When</th><th>Account</th><th>Credits</th><th>Reason</th></tr></thead><tbody></tbody></table></section>
</main>
<div id="toast"></div>
<script nonce="@NONCE@">
"use strict";
const KEY = "edgecoder-admin-token";
const $ = (id) => document.getElementById(id);
let lastResults = null, lastAt = null, timer = null;
function token() { return sessionStorage.getItem(KEY) || ""; }
async function api(method, path, body) {
  const headers = { "x-admin-token": token() };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { status: r.status, data };
}
function toast(text, bad) {
  const t = $("toast"); t.textContent = text; t.className = bad ? "bad" : "ok"; t.style.display = "block";
  setTimeout(() => { t.style.display = "none"; }, 4000);
}
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
function fill(id, items, render) {
  const body = $(id).tBodies[0]; body.replaceChildren();
  if (!items.length) { const r = body.insertRow(); const td = cell(r, "none", "dim"); td.colSpan = 7; return; }
  for (const item of items) render(body.insertRow(), item);
}
function when(ms) { return ms ? new Date(ms).toLocaleString() : ""; }
function power(a) {
  const t = a.powerTelemetry || {};
  if (t.onBattery === true) return "battery " + (t.batteryLevelPct ?? "?") + "%";
  if (t.onBattery === false) return "mains";
  return (a.powerPolicy && a.powerPolicy.reason) || "";
}
async function act(rollout, action) {
  if (!confirm(action + " rollout " + rollout + "?")) return;
  const r = await api("POST", "/rollouts/" + encodeURIComponent(rollout) + "/" + action, {});
  if (r.status === 200) toast(action + ": " + rollout + " is now " + r.data.stage, false);
  else toast(action + " refused: " + ((r.data && (r.data.detail || r.data.error)) || r.status), true);
  refresh();
}
function render(d) {
  $("mode").textContent = "network mode: " + (d.networkMode || "unknown");
  $("updated").textContent = "updated " + new Date(d.generatedAt).toLocaleTimeString();
  $("agents-online").textContent = d.agents.online;
  $("agents-total").textContent = d.agents.offline + " offline, " + d.agents.total + " in all";
  const q = d.queue || {};
  $("queued").textContent = q.queued ?? "-";
  $("results").textContent = q.results ?? "-";
  if (lastResults !== null && q.results !== undefined && d.generatedAt > lastAt) {
    const perMin = (q.results - lastResults) * 60000 / (d.generatedAt - lastAt);
    $("throughput").textContent = perMin.toFixed(1) + " per minute";
  }
  if (q.results !== undefined) { lastResults = q.results; lastAt = d.generatedAt; }
  $("rollout-count").textContent = d.rollouts.length;
  fill("agents", d.agents.list, (r, a) => {
    cell(r, a.agentId); cell(r, a.online ? "online" : "offline", a.online ? "ok" : "bad");
    cell(r, a.os || ""); cell(r, a.activeModel || ""); cell(r, a.approval + (a.served ? "" : " (not served)"));
    cell(r, power(a));
  });
  fill("rollouts", d.rollouts, (r, x) => {
    cell(r, x.rolloutId); cell(r, x.modelId); cell(r, x.stage); cell(r, x.progressPercent + "%");
    cell(r, x.failurePercent + "%", x.failurePercent ? "bad" : ""); cell(r, x.agentCount);
    const td = r.insertCell();
    if (x.stage !== "rolled_back") {
      if (x.stage !== "full") {
        const p = document.createElement("button"); p.textContent = "Promote"; p.dataset.action = "promote";
        p.addEventListener("click", () => act(x.rolloutId, "promote")); td.append(p, " ");
      }
      const b = document.createElement("button"); b.textContent = "Roll back"; b.className = "danger"; b.dataset.action = "rollback";
      b.addEventListener("click", () => act(x.rolloutId, "rollback")); td.append(b);
    }
  });
  fill("blacklist", d.blacklist, (r, b) => { cell(r, b.agentId); cell(r, b.reasonCode + ": " + b.reason); cell(r, b.reporterId); cell(r, when(b.createdAtMs)); });
  fill("adjustments", d.credits.recentAdjustments, (r, c) => { cell(r, when(c.atMs)); cell(r, c.accountId); cell(r, c.credits); cell(r, c.reason); });
}
async function refresh() {
  const r = await api("GET", "/admin/api/dashboard-data");
  if (r.status === 401 || r.status === 403) { signOut((r.data && r.data.detail) || "the token was refused"); return false; }
  if (r.status !== 200) { $("updated").textContent = "refresh failed (" + r.status + ")"; return true; }
  render(r.data); return true;
}
function signOut(message) {
  sessionStorage.removeItem(KEY); clearInterval(timer); timer = null;
  $("app").classList.add("hidden"); $("logout").classList.add("hidden"); $("login").classList.remove("hidden");
  $("login-error").textContent = message || "";
}
async function signIn() {
  if (!(await refresh())) return;
  $("login").classList.add("hidden"); $("app").classList.remove("hidden"); $("logout").classList.remove("hidden");
  if (!timer) timer = setInterval(refresh, 5000);
}
$("login-form").addEventListener("submit", (e) => {
  e.preventDefault(); sessionStorage.setItem(KEY, $("token").value.trim()); $("token").value = ""; signIn();
});
$("logout").addEventListener("click", () => signOut(""));
$("credits-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await api("GET", "/credits/" + encodeURIComponent($("account").value.trim()) + "/history?limit=5");
  $("credits-result").textContent = r.status === 200
    ? r.data.accountId + ": " + r.data.balance + " credits, " + r.data.entries + " entries"
    : "lookup failed: " + ((r.data && (r.data.detail || r.data.error)) || r.status);
});
if (token()) signIn();
</script>
</body></html>
)HTML";

net::Response dashboard_page() {
  const std::string nonce = core::crypto::random_hex(16);
  std::string html(kDashboardHtml);
  for (auto at = html.find("@NONCE@"); at != std::string::npos; at = html.find("@NONCE@", at)) {
    html.replace(at, 7, nonce);
  }
  auto r = net::Response::text(200, std::move(html), "text/html; charset=utf-8");
  r.set_header("Content-Security-Policy",
               "default-src 'none'; script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce +
                   "'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                   "frame-ancestors 'none'");
  r.set_header("X-Frame-Options", "DENY");
  r.set_header("Referrer-Policy", "no-referrer");
  r.set_header("Cache-Control", "no-store");
  return r;
}

asio::awaitable<net::Response> dashboard_data(ServicePtr svc, net::Request) {
  auto agents_call = call_coordinator(svc, "GET", "/admin/agents", "");
  auto agents = co_await std::move(agents_call);
  if (!agents) co_return unreachable(agents.error());
  if (agents->status != 200) co_return relay(*agents);
  auto mode_call = call_coordinator(svc, "GET", "/admin/network/mode", "");
  auto mode = co_await std::move(mode_call);
  auto runtime_call = call_coordinator(svc, "GET", "/health/runtime", "");
  auto runtime = co_await std::move(runtime_call);
  auto blacklist_call = call_coordinator(svc, "GET", "/security/blacklist", "");
  auto blacklist = co_await std::move(blacklist_call);

  json list = json::array();
  int online = 0;
  for (const auto& a : agents->body.value("agents", json::array())) {
    if (a.value("online", false)) ++online;
    list.push_back(a);
  }
  json out = {{"generatedAt", svc->now()},
              {"networkMode",
               mode && mode->status == 200 ? mode->body.value("networkMode", "") : std::string()},
              {"agents",
               {{"total", list.size()},
                {"online", online},
                {"offline", static_cast<int>(list.size()) - online},
                {"list", list}}},
              {"queue", json::object()},
              {"blacklist", json::array()}};
  if (runtime && runtime->status == 200 && runtime->body.contains("coordinator")) {
    out["queue"] = runtime->body["coordinator"];
  }
  if (blacklist && blacklist->status == 200) {
    out["blacklist"] = blacklist->body.value("records", json::array());
  }

  store::Store* st = svc->store.get();
  auto local = st->run([st]() -> core::Result<json> {
    auto rollouts = list_rollouts_json(*st);
    if (!rollouts) return rollouts.error();
    auto audit = st->recent_audit("credits.adjust", "", 10);
    if (!audit) return audit.error();
    json adjustments = json::array();
    for (const auto& a : *audit) {
      json detail = json::parse(a.detail_json, nullptr, false);
      if (!detail.is_object()) detail = json::object();
      adjustments.push_back({{"atMs", a.at_ms},
                             {"accountId", a.target},
                             {"credits", detail.value("credits", 0.0)},
                             {"reason", detail.value("reason", "")}});
    }
    return json{{"rollouts", *rollouts}, {"adjustments", adjustments}};
  });
  auto stored = co_await std::move(local);
  if (!stored) co_return net::Response::error(stored.error());
  out["rollouts"] = (*stored)["rollouts"];
  out["credits"] = {{"recentAdjustments", (*stored)["adjustments"]}};
  co_return net::Response::json(200, out);
}

}  // namespace detail

void add_dashboard_routes(net::Router& router, ServicePtr svc) {
  router.add_sync("GET", "/admin/dashboard",
                  [](const net::Request&) { return detail::dashboard_page(); });
  router.add("GET", "/admin/api/dashboard-data",
             [svc](net::Request r) { return detail::dashboard_data(svc, std::move(r)); });
}

}  // namespace edgecoder::control
