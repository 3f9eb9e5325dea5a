#include "proxy/admin_page.h"

namespace sluice::proxy {

std::string_view admin_page_html() {
  static constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sluice status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
:root { --bg:#0f1720; --panel:#16212d; --line:#243445; --text:#e6edf3; --dim:#8aa0b4;
        --ok:#3fb950; --warn:#d29922; --bad:#f85149; --accent:#58a6ff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       background:var(--bg); color:var(--text); }
header { display:flex; align-items:baseline; gap:16px; padding:18px 28px;
         border-bottom:1px solid var(--line); }
header h1 { margin:0; font-size:20px; letter-spacing:.5px; }
header .meta { color:var(--dim); }
#live { margin-left:auto; color:var(--dim); }
#live.on::before { content:"● "; color:var(--ok); }
main { padding:20px 28px; display:grid; gap:20px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(180px,1fr)); gap:14px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.card .k { color:var(--dim); font-size:12px; text-transform:uppercase; letter-spacing:.6px; }
.card .v { font-size:26px; font-weight:600; margin-top:4px; font-variant-numeric:tabular-nums; }
section { background:var(--panel); border:1px solid var(--line); border-radius:10px; }
section h2 { margin:0; padding:12px 16px; font-size:15px; border-bottom:1px solid var(--line); }
table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:8px 16px; border-bottom:1px solid var(--line); }
th { color:var(--dim); font-weight:500; font-size:12px; text-transform:uppercase; }
tr:last-child td { border-bottom:none; }
.bar { position:relative; height:8px; width:160px; background:#0b121a; border-radius:4px; overflow:hidden;
       display:inline-block; vertical-align:middle; margin-right:8px; }
.bar i { position:absolute; left:0; top:0; bottom:0; background:var(--accent); }
.bar i.full { background:var(--warn); }
.pill { padding:2px 8px; border-radius:999px; font-size:12px; }
.up { background:rgba(63,185,80,.15); color:var(--ok); }
.down { background:rgba(248,81,73,.15); color:var(--bad); }
.dim { color:var(--dim); }
</style></head>
<body>
<header><h1>sluice</h1><span class="meta" id="version"></span><span id="live">connecting…</span></header>
<main>
  <div class="cards">
    <div class="card"><div class="k">Requests / s</div><div class="v" id="rps">–</div></div>
    <div class="card"><div class="k">Mean latency</div><div class="v" id="lat">–</div></div>
    <div class="card"><div class="k">Shed / s</div><div class="v" id="shed">–</div></div>
    <div class="card"><div class="k">Open connections</div><div class="v" id="conns">–</div></div>
  </div>
  <section><h2>Listeners</h2><table><thead><tr><th>Name</th><th>Address</th><th>Connections</th></tr></thead>
    <tbody id="listeners"></tbody></table></section>
  <section><h2>Routes</h2><table><thead><tr><th>Route</th><th>Requests</th><th>2xx</th><th>4xx</th><th>5xx</th></tr></thead>
    <tbody id="routes"></tbody></table></section>
  <section><h2>Upstream servers</h2><table><thead><tr><th>Upstream</th><th>Server</th><th>Health</th>
    <th>In flight / limit</th><th>Queue</th><th>Shed</th></tr></thead><tbody id="servers"></tbody></table></section>
</main>
<script>
"use strict";
let last = null;
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
function totals(s) {
  let req = 0, sum = 0, cnt = 0, shed = 0;
  for (const r of s.routes) { req += r.requests; sum += r.duration_sum; cnt += r.duration_count; }
  for (const u of s.upstreams) shed += u.shed;
  return {req, sum, cnt, shed, t: performance.now()};
}
function draw(s) {
  document.getElementById("version").textContent = "v" + s.version + (s.draining ? " · draining" : "");
  const now = totals(s);
  if (last) {
    const dt = (now.t - last.t) / 1000;
    document.getElementById("rps").textContent = ((now.req - last.req) / dt).toFixed(0);
    const n = now.cnt - last.cnt;
    document.getElementById("lat").textContent = n > 0 ? ((now.sum - last.sum) / n * 1000).toFixed(2) + " ms" : "–";
    document.getElementById("shed").textContent = ((now.shed - last.shed) / dt).toFixed(1);
  }
  last = now;
  document.getElementById("conns").textContent = s.connections;
  document.getElementById("listeners").innerHTML = s.listeners.map(l =>
    `<tr><td>${esc(l.name)}</td><td>${esc(l.address)}</td><td>${l.connections}</td></tr>`).join("");
  document.getElementById("routes").innerHTML = s.routes.map(r =>
    `<tr><td>${r.name ? esc(r.name) : '<span class="dim">(no route)</span>'}</td><td>${r.requests}</td>` +
    `<td>${r["2xx"]}</td><td>${r["4xx"]}</td><td>${r["5xx"]}</td></tr>`).join("");
  document.getElementById("servers").innerHTML = s.upstreams.flatMap(u => u.servers.map((sv, i) => {
    const pct = sv.limit > 0 ? Math.min(100, 100 * sv.in_flight / sv.limit) : 0;
    const lim = (sv.limit > 0 ? sv.limit : "∞") +
      (sv.limit_learned > 0 ? ` <span class="dim">(learned ${sv.limit_learned})</span>` :
       sv.limit_configured > 0 && sv.limit < sv.limit_configured ? ` <span class="dim">(of ${sv.limit_configured})</span>` : "");
    const health = sv.healthy ? "up" : (sv.health === "ejected" ? "ejected" : "down");
    return `<tr><td>${i === 0 ? esc(u.name) : ""}</td><td>${esc(sv.address)}</td>` +
      `<td><span class="pill ${sv.healthy ? "up" : "down"}">${health}</span></td>` +
      `<td><span class="bar"><i class="${pct >= 100 ? "full" : ""}" style="width:${pct}%"></i></span>${sv.in_flight} / ${lim}</td>` +
      `<td>${i === 0 ? u.queue_depth : ""}</td><td>${i === 0 ? u.shed : ""}</td></tr>`;
  })).join("");
}
async function poll() {
  const live = document.getElementById("live");
  try {
    const r = await fetch("/status", {cache: "no-store"});
    draw(await r.json());
    live.textContent = "live"; live.className = "on";
  } catch (e) {
    live.textContent = "disconnected"; live.className = "";
  }
  setTimeout(poll, 1000);
}
poll();
</script></body></html>
)HTML";
  return kPage;
}

}  // namespace sluice::proxy
