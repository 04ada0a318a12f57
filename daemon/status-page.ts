// The status page served at GET / by --http-listen: one self-contained HTML document (no CDN, no
// external font, no file beside it). It reads /api/status and one page of reserved IPs per
// network, and listens on /api/events to read them again when something committed: live,
// without a reload. Data goes into the DOM as text only (textContent), never as HTML.
// The script below avoids backquotes and dollar-brace: it lives inside a template literal.
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reservoir status</title>
<style>
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --fg: #1b1f24; --muted: #5a6472; --line: #d6dae0;
  --leased: #1f6feb; --held: #b7791f; --free: #d9dee5; --refusal: #c62828; --focus: #ff9800; }
@media (prefers-color-scheme: dark) { :root { --bg: #111418; --card: #1a1f25; --fg: #e8eaed; --muted: #9aa4b1; --line: #2d343c; --free: #3a424c; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
a.skip { position: absolute; left: -999px; } a.skip:focus { left: 8px; top: 8px; background: var(--card); padding: 4px 8px; }
header { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; padding: 12px 16px; border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 1.25rem; margin: 0; }
#live { font-size: .875rem; color: var(--muted); } #live[data-state="live"]::before { content: "\\25CF  "; color: #2e7d32; }
#live[data-state="offline"]::before { content: "\\25CF  "; color: var(--refusal); }
main { padding: 12px; display: grid; gap: 12px; max-width: 1200px; margin: 0 auto; }
main > *, #networks > * { min-width: 0; }
#networks { display: grid; gap: 12px; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
h2 { font-size: 1.1rem; margin: 0 0 8px; } h3 { font-size: 1rem; margin: 12px 0 6px; }
.pools { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 10px; }
.bar { display: flex; height: 14px; border-radius: 7px; overflow: hidden; background: var(--free); margin: 4px 0; }
.bar span { display: block; height: 100%; } .bar .leased { background: var(--leased); } .bar .held { background: var(--held); }
.legend { font-size: .875rem; color: var(--muted); font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; }
tr.group th { background: var(--bg); color: var(--fg); }
.state { display: inline-block; min-width: 4.5em; text-align: center; border-radius: 10px; padding: 0 8px; font-size: .8rem; }
.state.leased { background: var(--leased); color: #fff; } .state.held { background: var(--held); color: #fff; } .state.free { background: var(--free); }
.ev-refusal td:first-child { border-left: 3px solid var(--refusal); }
.controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 6px 0; font-size: .9rem; }
button, select { font: inherit; font-size: .9rem; padding: 4px 10px; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: var(--fg); min-height: 32px; }
button:disabled { opacity: .5; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.muted { color: var(--muted); } .empty { color: var(--muted); font-style: italic; }
@media (max-width: 600px) { main { padding: 8px; } th, td { padding: 4px 6px; } .hide-narrow { display: none; } }
</style>
</head>
<body>
<a class="skip" href="#networks">Skip to networks</a>
<header><h1>reservoir</h1><span id="node" class="muted"></span><span id="live" role="status" aria-live="polite" data-state="connecting">connecting</span></header>
<main>
<div id="networks"></div>
<section class="card" aria-labelledby="events-title"><h2 id="events-title">Recent events</h2>
<div class="table-wrap"><table id="events"><thead><tr><th scope="col">Time</th><th scope="col">Network</th><th scope="col">IP</th><th scope="col">Event</th><th scope="col">Why</th><th scope="col">Who</th><th scope="col" class="hide-narrow">Held by</th></tr></thead><tbody></tbody></table></div>
</section>
</main>
<script>
"use strict";
var PAGE_SIZE = 100;
var views = {};
var node = "";
var events = [];

function el(tag, attrs, children) {
  var e = document.createElement(tag);
  if (attrs) for (var k in attrs) {
    if (k === "text") e.textContent = attrs[k];
    else if (k === "class") e.className = attrs[k];
    else e.setAttribute(k, attrs[k]);
  }
  (children || []).forEach(function (c) { if (c) e.appendChild(c); });
  return e;
}
function num(x) { var s = String(x); return s.length > 12 ? s[0] + "." + s.slice(1, 3) + "e" + (s.length - 1) : Number(s).toLocaleString("en-US"); }
function pct(part, whole) { var w = Number(whole); return w > 0 ? Math.min(100, 100 * Number(part) / w) : 0; }
function when(ms) { if (ms === null || ms === undefined) return "-"; var d = new Date(ms); return d.toISOString().replace("T", " ").slice(0, 19); }
function getJson(path) {
  return fetch(path, { headers: { accept: "application/json" } }).then(function (r) {
    return r.json().then(function (body) { if (!r.ok) throw new Error(body.msg || r.statusText); return body; });
  });
}

function poolBlock(title, size, leased, held) {
  var free = BigInt(size) - BigInt(leased) - BigInt(held);
  var bar = el("div", { class: "bar", role: "img", "aria-label": title + ": " + leased + " leased, " + held + " held, " + free + " free of " + size });
  bar.appendChild(el("span", { class: "leased", style: "width:" + pct(leased, size) + "%" }));
  bar.appendChild(el("span", { class: "held", style: "width:" + pct(held, size) + "%" }));
  var used = Number(leased) + Number(held);
  return el("div", { class: "pool" }, [
    el("div", { text: title + ": " + num(used) + " of " + num(size) + " in use (" + pct(used, size).toFixed(1) + "%)" }),
    bar,
    el("div", { class: "legend" }, [
      el("span", { class: "swatch", style: "background:var(--leased)" }), document.createTextNode("leased " + num(leased) + "  "),
      el("span", { class: "swatch", style: "background:var(--held)" }), document.createTextNode("held " + num(held) + "  "),
      el("span", { class: "swatch", style: "background:var(--free)" }), document.createTextNode("free " + num(free)),
    ]),
  ]);
}

function networkCard(u) {
  var v = views[u.network] || (views[u.network] = { offset: 0, state: "all", page: null });
  var id = "net-" + u.network.replace(/[^A-Za-z0-9_-]/g, "_");
  var card = el("section", { class: "card", id: id, "aria-labelledby": id + "-title", "data-network": u.network });
  card.appendChild(el("h2", { id: id + "-title", text: u.network + "  (" + num(u.size) + " IPs)" }));
  card.appendChild(el("div", { class: "pools" }, [
    poolBlock("Dynamic", u.dynamicSize, u.dynamicInUse - u.dynamicHeld, u.dynamicHeld),
    poolBlock("Reserved", u.reservedTotal, u.reservedUsed - u.reservedHeld, u.reservedHeld),
  ]));
  var holder = el("div", { class: "reserved" });
  card.appendChild(holder);
  renderReserved(u.network, holder);
  return card;
}

function renderReserved(network, holder) {
  var v = views[network];
  holder.textContent = "";
  var page = v.page;
  if (!page) { holder.appendChild(el("p", { class: "empty", text: "loading reserved IPs" })); return; }
  holder.appendChild(el("h3", { text: "Reserved IPs (" + page.entries.length + " entries)" }));
  if (page.entries.length === 0) { holder.appendChild(el("p", { class: "empty", text: "no reserved entries" })); return; }
  var filter = el("select", { "aria-label": "Which reserved IPs of " + network, "data-key": "filter:" + network });
  [["all", "all reserved IPs"], ["used", "only those in use"]].forEach(function (o) {
    var opt = el("option", { value: o[0], text: o[1] }); if (o[0] === v.state) opt.selected = true; filter.appendChild(opt);
  });
  filter.addEventListener("change", function () { v.state = filter.value; v.offset = 0; loadReserved(network); });
  var total = Number(page.total);
  var first = total === 0 ? 0 : page.offset + 1;
  var last = page.offset + page.ips.length;
  var prev = el("button", { type: "button", text: "Previous", "data-key": "prev:" + network, "aria-label": "Previous page of reserved IPs of " + network }); prev.disabled = page.offset === 0;
  var next = el("button", { type: "button", text: "Next", "data-key": "next:" + network, "aria-label": "Next page of reserved IPs of " + network }); next.disabled = last >= total;
  prev.addEventListener("click", function () { v.offset = Math.max(0, v.offset - PAGE_SIZE); loadReserved(network, true); });
  next.addEventListener("click", function () { v.offset += PAGE_SIZE; loadReserved(network, true); });
  holder.appendChild(el("div", { class: "controls" }, [filter, prev, el("span", { class: "muted", text: first + "-" + last + " of " + num(page.total) }), next]));
  var tbody = el("tbody");
  var current = null;
  var entries = {};
  page.entries.forEach(function (e) { entries[e.entry] = e; });
  page.ips.forEach(function (ip) {
    if (ip.entry !== current) {
      current = ip.entry;
      var e = entries[ip.entry] || {};
      var label = ip.entry + (e.group ? "  group " + e.group : "") + (e.note ? "  (" + e.note + ")" : "") + "  " + (e.used || 0) + "/" + num(e.size || 0) + " in use";
      tbody.appendChild(el("tr", { class: "group" }, [el("th", { colspan: "6", scope: "rowgroup", text: label })]));
    }
    var who = ip.app || (ip.attachment ? "-" : "");
    var container = ip.attachment ? ip.attachment.split("/")[0].slice(0, 12) + "/" + ip.attachment.split("/")[1] : "";
    tbody.appendChild(el("tr", { "data-ip": ip.ip, "data-state": ip.state }, [
      el("td", { text: ip.ip }),
      el("td", {}, [el("span", { class: "state " + ip.state, text: ip.state })]),
      el("td", { class: "holder", text: who }),
      el("td", { text: container }),
      el("td", { class: "hide-narrow", text: ip.node || "" }),
      el("td", { class: "hide-narrow", text: ip.since ? when(ip.since) : "" }),
    ]));
  });
  holder.appendChild(el("p", { class: "legend", text: "Each reserved IP: free, leased (a container attached) or held (a stateful app, no container)" }));
  var table = el("table", { "aria-label": "Reserved IPs of " + network }, [
    el("thead", {}, [el("tr", {}, ["IP", "State", "Pod / app", "Container", "Node", "Since"].map(function (h, i) {
      return el("th", { scope: "col", class: i > 3 ? "hide-narrow" : "", text: h });
    }))]),
    tbody,
  ]);
  holder.appendChild(el("div", { class: "table-wrap" }, [table]));
}

/** Redraw without losing the keyboard focus: controls carry a data-key that survives the redraw. */
function keepFocus(draw) {
  var active = document.activeElement;
  var key = active && active.getAttribute ? active.getAttribute("data-key") : null;
  draw();
  if (key) { var again = document.querySelector('[data-key="' + CSS.escape(key) + '"]'); if (again && !again.disabled) again.focus(); }
}

function loadReserved(network, focusPager) {
  var v = views[network];
  return getJson("/api/networks/" + encodeURIComponent(network) + "/reserved?state=" + v.state + "&offset=" + v.offset + "&limit=" + PAGE_SIZE).then(function (page) {
    v.page = page;
    var card = document.querySelector('[data-network="' + CSS.escape(network) + '"] .reserved');
    if (card) keepFocus(function () { renderReserved(network, card); });
    if (focusPager && card) { var b = card.querySelector("button:not([disabled])"); if (b) b.focus(); }
  });
}

function renderEvents() {
  var tbody = document.querySelector("#events tbody");
  tbody.textContent = "";
  if (events.length === 0) { tbody.appendChild(el("tr", {}, [el("td", { colspan: "7", class: "empty", text: "no events yet" })])); return; }
  events.slice().reverse().forEach(function (e) {
    var who = e.app || (e.containerId ? e.containerId.slice(0, 12) : "-");
    tbody.appendChild(el("tr", { class: "ev-" + e.event, "data-event": e.event }, [
      el("td", { text: when(e.at) }), el("td", { text: e.network }), el("td", { text: e.ip }),
      el("td", { text: e.event }), el("td", { text: e.reason }), el("td", { text: who }),
      el("td", { class: "hide-narrow", text: e.holder || "" }),
    ]));
  });
}

function render(status) {
  node = status.node;
  document.getElementById("node").textContent = "node " + status.node + "  |  reservoird " + status.version;
  var box = document.getElementById("networks");
  box.textContent = "";
  if (status.networks.length === 0) box.appendChild(el("section", { class: "card" }, [el("p", { class: "empty", text: "no networks registered yet" })]));
  status.networks.forEach(function (u) { box.appendChild(networkCard(u)); });
}

var refreshing = null;
var again = false;
function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = getJson("/api/status").then(function (status) {
    events = status.events;
    keepFocus(function () { render(status); });
    renderEvents();
    return Promise.all(status.networks.map(function (u) { return loadReserved(u.network); }));
  }).catch(function (err) {
    document.getElementById("live").textContent = "error: " + err.message;
  }).then(function () {
    refreshing = null;
    if (again) { again = false; refresh(); }
  });
  return refreshing;
}

function listen() {
  var live = document.getElementById("live");
  var source = new EventSource("/api/events");
  source.addEventListener("open", function () { live.dataset.state = "live"; live.textContent = "live"; refresh(); });
  source.addEventListener("error", function () { live.dataset.state = "offline"; live.textContent = "reconnecting"; });
  source.addEventListener("change", function () { refresh(); });
}

refresh();
listen();
</script>
</body>
</html>
`;
