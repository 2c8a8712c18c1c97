#include "inference/dashboard.h"

namespace edgecoder::inference {

namespace {

// Kept small and dependency-free: no external fonts, scripts or images (the node may be offline).
constexpr std::string_view kDashboardHtml = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>EdgeCoder Agent Dashboard</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #0f1117; color: #e4e6eb; }
  header { padding: 16px 24px; border-bottom: 1px solid #262a36; }
  header h1 { margin: 0; font-size: 20px; }
  header p { margin: 4px 0 0; color: #8b90a0; }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 16px;
         padding: 24px; }
  section { background: #171a23; border: 1px solid #262a36; border-radius: 8px; padding: 16px; }
  section h2 { margin: 0 0 8px; font-size: 13px; text-transform: uppercase; color: #8b90a0; }
  .big { font-size: 22px; font-weight: 600; }
  .ok { color: #3fb950; } .warn { color: #d29922; } .bad { color: #f85149; }
  table { width: 100%; border-collapse: collapse; }
  td { padding: 4px 0; border-bottom: 1px solid #262a36; }
  button { background: #238636; color: #fff; border: 0; border-radius: 4px; padding: 2px 8px;
           cursor: pointer; }
  #stub { display: none; background: #3d2f00; color: #f0c000; padding: 8px 24px; }
  #log { font-family: ui-monospace, monospace; font-size: 12px; max-height: 160px; overflow: auto; }
</style>
</head>
<body>
<header>
  <h1>EdgeCoder Agent Dashboard</h1>
  <p>Inference Service Monitor</p>
</header>
<div id="stub">This node uses edgecoder-local: a deterministic offline stub, not an LLM.</div>
<main>
  <section><h2>Active model</h2><div class="big" id="model">-</div><div id="params"></div></section>
  <section><h2>Model server</h2><div class="big" id="health">-</div><div id="provider"></div></section>
  <section><h2>Process</h2><div id="uptime">-</div><div id="memory"></div><div id="version"></div></section>
  <section><h2>Decompose</h2><div class="big" id="decompose">-</div><div id="fallbacks"></div></section>
  <section><h2>Escalate</h2><div class="big" id="escalate">-</div><div id="latency"></div></section>
  <section><h2>Chat</h2><div class="big" id="chat">-</div></section>
  <section><h2>Installed models</h2><table id="models"></table></section>
  <section><h2>Swap history</h2><table id="history"></table></section>
  <section><h2>Activity</h2><div id="log"></div></section>
</main>
<script>
const API = window.location.origin;
function token() {
  let t = sessionStorage.getItem("edgecoderInferenceToken");
  if (!t) {
    t = prompt("Inference token (x-inference-token; `edgecoder token show inference`)") || "";
    sessionStorage.setItem("edgecoderInferenceToken", t);
  }
  return t;
}
async function call(path, options = {}) {
  options.headers = Object.assign({"x-inference-token": token()}, options.headers || {});
  const r = await fetch(API + path, options);
  if (r.status === 401) { sessionStorage.removeItem("edgecoderInferenceToken"); }
  if (!r.ok && r.status !== 502) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
function text(id, value, cls) {
  const el = document.getElementById(id);
  el.textContent = value;
  if (cls !== undefined) el.className = "big " + cls;
}
function log(line) {
  const el = document.getElementById("log");
  const row = document.createElement("div");
  row.textContent = new Date().toLocaleTimeString() + "  " + line;
  el.prepend(row);
}
function rate(ok, all) { return all ? Math.round(100 * ok / all) + "%" : "-"; }
async function swap(model) {
  try {
    const r = await call("/model/swap", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify({model})});
    if (r.status === "ready") log("active model: " + r.active);
    else if (r.status === "pulling") log("downloading " + model + "; it becomes active when done");
    else log("swap failed: " + (r.error || r.status));
  } catch (e) { log(String(e)); }
  refresh();
}
async function refresh() {
  try {
    const o = await call("/dashboard/api/overview");
    text("model", o.activeModel);
    text("params", o.activeModelParamSize ? o.activeModelParamSize + "B parameters" : "");
    text("health", o.ollamaHealthy ? "reachable" : "unreachable", o.ollamaHealthy ? "ok" : "bad");
    text("provider", "provider: " + o.provider);
    document.getElementById("stub").style.display = o.llm === false ? "block" : "none";
    text("uptime", "uptime " + o.uptimeSeconds + " s");
    text("memory", "memory " + o.memoryMB + " MB");
    text("version", "edgecoder " + o.nodeVersion);
    const m = o.metrics || {};
    text("decompose", rate(m.decomposeSuccesses, m.decomposeRequests) + " of " + (m.decomposeRequests || 0));
    text("fallbacks", (m.decomposeFallbacks || 0) + " fallbacks");
    text("escalate", rate(m.escalateSuccesses, m.escalateRequests) + " of " + (m.escalateRequests || 0));
    const calls = (m.decomposeRequests || 0) + (m.escalateRequests || 0);
    const avg = calls ? Math.round(m.totalLatencyMs / calls) : 0;
    text("latency", "average " + avg + " ms");
    text("chat", (m.chatRequests || 0) + " streams, " + (m.chatFailures || 0) + " failed");
    const models = await call("/model/list");
    const table = document.getElementById("models");
    table.innerHTML = "";
    for (const entry of models) {
      const row = table.insertRow();
      row.insertCell().textContent = entry.modelId + (entry.paramSize ? " (" + entry.paramSize + "B)" : "");
      const cell = row.insertCell();
      if (entry.active) { cell.textContent = "active"; cell.className = "ok"; }
      else {
        const b = document.createElement("button");
        b.textContent = "Activate";
        b.onclick = () => swap(entry.modelId);
        cell.appendChild(b);
      }
    }
    const h = await call("/dashboard/api/swap-history");
    const ht = document.getElementById("history");
    ht.innerHTML = "";
    for (const s of h.history) {
      const row = ht.insertRow();
      row.insertCell().textContent = s.timestamp.replace("T", " ").slice(0, 19);
      row.insertCell().textContent = s.from + " \u2192 " + s.to;
    }
  } catch (e) { log(String(e)); }
}
refresh();
setInterval(refresh, 5000);
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view dashboard_html() { return kDashboardHtml; }

}  // namespace edgecoder::inference
