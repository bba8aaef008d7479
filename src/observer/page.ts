/**
 * The observer's one page: HTML, CSS and script in one string, no CDN, no
 * build step. It reads `/events` as Server-Sent Events over `fetch` (so the
 * token can travel in a header, never in a URL), keeps one element per
 * node keyed by path, and on each patch touches only the nodes that
 * changed. The token comes from the URL fragment (`#token=…`, which the
 * browser never sends) or a prompt, and is kept in sessionStorage; it is
 * never part of the page the server sends.
 */
import { createHash } from "node:crypto";

const STYLE = `
:root { color-scheme: light dark; --bg: #fbfbfc; --fg: #1d2230; --dim: #6b7386; --line: #e3e6ee; --ok: #1f9d55; --warn: #c98a00; --bad: #d64545; --off: #9aa1b1; --hl: #fff1c2; --panel: #f3f4f8; }
@media (prefers-color-scheme: dark) { :root { --bg: #15171e; --fg: #e4e7ef; --dim: #8d94a6; --line: #2a2e3a; --panel: #1c1f28; --hl: #4a3d10; } }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); display: grid; grid-template-rows: auto 1fr; height: 100vh; }
header { display: flex; gap: 12px; align-items: center; padding: 8px 14px; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
header h1 { font-size: 14px; margin: 0; font-weight: 600; }
#conn { font-size: 12px; color: var(--dim); }
#conn::before { content: "●"; margin-right: 4px; color: var(--off); }
#conn.live::before { color: var(--ok); }
#q { padding: 4px 8px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); min-width: 220px; }
#counts { color: var(--dim); font-size: 12px; margin-left: auto; }
button { font: inherit; cursor: pointer; }
header button, #detail button { border: 1px solid var(--line); background: var(--panel); color: var(--fg); border-radius: 6px; padding: 3px 9px; }
main { display: grid; grid-template-columns: 1fr 380px; min-height: 0; }
#tree { overflow: auto; padding: 8px 6px 40px; }
aside { border-left: 1px solid var(--line); overflow: auto; background: var(--panel); padding: 10px 12px; }
aside h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--dim); margin: 12px 0 6px; }
.n > .c { margin-left: 18px; border-left: 1px dotted var(--line); }
.n.closed > .c { display: none; }
.r { display: flex; gap: 10px; align-items: center; padding: 2px 6px; border-radius: 4px; white-space: nowrap; content-visibility: auto; contain-intrinsic-size: auto 22px; }
.r:hover { background: var(--panel); }
.n.sel > .r { outline: 1px solid var(--dim); }
.t { width: 16px; border: 0; background: none; color: var(--dim); padding: 0; visibility: hidden; }
.has > .r > .t { visibility: visible; }
.n.closed > .r > .t { transform: rotate(-90deg); }
.id { font-family: ui-monospace, monospace; font-weight: 600; }
.k-worker > .r > .id { font-weight: 400; }
.badge { font-size: 11px; color: var(--dim); border: 1px solid var(--line); border-radius: 10px; padding: 0 7px; }
.st { font-size: 11px; font-weight: 600; text-transform: uppercase; color: var(--off); min-width: 76px; }
.n[data-status=running] > .r > .st { color: var(--ok); }
.n[data-status=restarting] > .r > .st, .n[data-status=starting] > .r > .st, .n[data-status=stopping] > .r > .st { color: var(--warn); }
.rs { color: var(--dim); min-width: 34px; }
.n:not([data-restarts="0"]) > .r > .rs { color: var(--warn); font-weight: 600; }
.meter { display: inline-block; width: 46px; height: 6px; background: var(--line); border-radius: 3px; overflow: hidden; vertical-align: middle; margin-right: 4px; }
.meter i { display: block; height: 100%; background: var(--ok); }
.meter.hot i { background: var(--bad); }
.in, .mb, .ago { color: var(--dim); font-size: 12px; }
.f { color: var(--bad); overflow: hidden; text-overflow: ellipsis; max-width: 46ch; }
.filtering .n:not(.v) { display: none; }
.filtering .n.v > .c { display: block; }
table { width: 100%; border-collapse: collapse; font-size: 12px; }
td { padding: 2px 4px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.o-ok { color: var(--ok); } td.o-error, td.o-killed, td.o-timeout, td.o-cascade { color: var(--bad); }
dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 10px; margin: 0; font-size: 12px; }
dt { color: var(--dim); } dd { margin: 0; word-break: break-word; }
#msg { font-size: 12px; color: var(--dim); }
.empty { color: var(--dim); font-style: italic; }
`;

const SCRIPT = `
"use strict";
const $ = (s) => document.querySelector(s);
const treeEl = $("#tree"), connEl = $("#conn"), qEl = $("#q"), problemsEl = $("#problems"), countsEl = $("#counts"), recordsEl = $("#records"), detailEl = $("#detail"), msgEl = $("#msg");
const nodes = new Map();          // path -> { d: data, el, row parts }
const closed = new Set();         // paths the user collapsed
const opened = new Set();         // paths the user expanded (big ones start collapsed)
let actions = false, selected = null, filterQueued = false, sideQueued = false;
const KEY = "backplane-observer-token";
let token = sessionStorage.getItem(KEY);
{
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) { token = decodeURIComponent(m[1]); sessionStorage.setItem(KEY, token); history.replaceState(null, "", location.pathname + location.search); }
}
const auth = () => (token ? { Authorization: "Bearer " + token } : {});
function askToken() {
  const t = prompt("This observer needs its token:");
  if (!t) return false;
  token = t.trim(); sessionStorage.setItem(KEY, token); return true;
}

// ---- Server-Sent Events over fetch (EventSource cannot carry the token in a header)
let retry = 500;
async function connect() {
  setConn("connecting…", false);
  let res;
  try { res = await fetch("events", { headers: auth(), cache: "no-store" }); } catch { return later(); }
  if (res.status === 401) { if (askToken()) return connect(); setConn("needs its token (reload to enter it)", false); return; }
  if (!res.ok || !res.body) { setConn("error " + res.status, false); return later(); }
  setConn("live", true); retry = 500;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\\n\\n")) >= 0) { const block = buf.slice(0, i); buf = buf.slice(i + 2); dispatch(block); }
    }
  } catch {}
  setConn("disconnected, retrying", false);
  later();
}
function later() { setTimeout(connect, retry); retry = Math.min(retry * 2, 10000); }
function setConn(text, live) { connEl.textContent = text; connEl.classList.toggle("live", live); }
function dispatch(block) {
  let event = "message", data = "";
  for (const line of block.split("\\n")) {
    if (line === "" || line[0] === ":") continue;
    const c = line.indexOf(":");
    const field = c < 0 ? line : line.slice(0, c);
    let v = c < 0 ? "" : line.slice(c + 1);
    if (v[0] === " ") v = v.slice(1);
    if (field === "event") event = v; else if (field === "data") data += (data ? "\\n" : "") + v;
  }
  if (!data) return;
  const msg = JSON.parse(data);
  if (event === "snapshot") snapshot(msg); else if (event === "patch") patch(msg);
}

// ---- the tree: one element per node, only changed nodes touched
function snapshot(msg) {
  actions = msg.actions;
  treeEl.textContent = "";
  nodes.clear();
  for (const d of msg.nodes) place(make(d));
  for (const d of msg.nodes) order(nodes.get(d.path));
  after(msg);
}
function patch(msg) {
  const reorder = [];
  for (const d of msg.changed) {
    const e = nodes.get(d.path);
    if (e === undefined) { place(make(d)); reorder.push(d.path); continue; }
    const kidsChanged = e.d.children.join("\\u0000") !== d.children.join("\\u0000");
    const restarted = d.restarts > e.d.restarts;
    e.d = d;
    fill(e);
    if (restarted) e.row.animate([{ backgroundColor: "rgba(255, 196, 0, 0.45)" }, { backgroundColor: "rgba(255, 196, 0, 0)" }], { duration: 1200 });
    if (kidsChanged) reorder.push(d.path);
  }
  for (const p of msg.removed) { const e = nodes.get(p); if (e) { e.el.remove(); nodes.delete(p); } }
  for (const p of reorder) { const e = nodes.get(p); if (e) order(e); }
  after(msg);
}
function after(msg) {
  counts();
  if (selected && !nodes.has(selected)) selected = null;
  queueSide();
  if (treeEl.classList.contains("filtering")) queueFilter();
  document.title = (msg.roots || []).map(decodeURIComponent).join(", ") + " · backplane observer";
}
function make(d) {
  const el = document.createElement("div");
  el.className = "n k-" + d.kind;
  el.dataset.path = d.path;
  el.dataset.childId = d.id;
  const row = document.createElement("div"); row.className = "r";
  const t = document.createElement("button"); t.className = "t"; t.textContent = "▾"; t.title = "collapse / expand";
  const id = span("id"), badge = span("badge"), st = span("st"), rs = span("rs"), inn = span("in"), mb = span("mb"), f = span("f"), ago = span("ago");
  row.append(t, id, badge, st, rs, inn, mb, f, ago);
  const kids = document.createElement("div"); kids.className = "c";
  el.append(row, kids);
  const e = { d, el, row, id, badge, st, rs, inn, mb, f, ago, kids, meter: null };
  id.textContent = d.id;
  if (d.children.length > 500 && !opened.has(d.path)) closed.add(d.path);
  el.classList.toggle("closed", closed.has(d.path));
  nodes.set(d.path, e);
  fill(e);
  return e;
}
function span(cls) { const s = document.createElement("span"); s.className = cls; return s; }
function text(s, v) { if (s.textContent !== v) s.textContent = v; }
function fill(e) {
  const d = e.d, el = e.el;
  if (el.dataset.status !== d.status) el.dataset.status = d.status;
  const r = String(d.restarts);
  if (el.dataset.restarts !== r) el.dataset.restarts = r;
  el.classList.toggle("has", d.children.length > 0);
  text(e.badge, d.strategy || (d.kind === "tasks" ? "tasks: " + (d.tasks ?? 0) + " running" : d.kind === "supervisor" ? "supervisor" : ""));
  e.badge.hidden = e.badge.textContent === "";
  text(e.st, d.status);
  text(e.rs, "↻ " + d.restarts);
  e.rs.title = d.restarts + " restart(s) of this child";
  if (d.intensity) {
    if (!e.meter) { e.meter = span("meter"); e.meter.append(document.createElement("i")); e.inn.before(e.meter); }
    const { used, allowed, period } = d.intensity;
    e.meter.firstChild.style.width = Math.min(100, allowed === 0 ? (used > 0 ? 100 : 0) : (100 * used) / allowed) + "%";
    e.meter.classList.toggle("hot", used >= allowed);
    text(e.inn, "intensity " + used + "/" + allowed + " in " + seconds(period));
  } else text(e.inn, "");
  text(e.mb, d.mailbox ? "mailbox " + d.mailbox : "");
  text(e.f, d.lastFault ? "last: " + d.lastFault : "");
  e.f.title = d.lastFault || "";
  ago(e);
}
function ago(e) { text(e.ago, e.d.lastFaultAt ? relative(e.d.lastFaultAt) : ""); }
function place(e) {
  const parent = e.d.parent === null ? undefined : nodes.get(e.d.parent);
  (parent ? parent.kids : treeEl).append(e.el);
}
function order(e) {
  const want = e.d.children, box = e.kids;
  for (let i = 0; i < want.length; i++) {
    const c = nodes.get(want[i]);
    if (c && box.children[i] !== c.el) box.insertBefore(c.el, box.children[i] || null);
  }
}
function seconds(ms) { return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(ms % 1000 ? 1 : 0) + " s"; }
function relative(at) {
  const s = Math.max(0, Math.round((Date.now() - at) / 1000));
  return s < 60 ? s + "s ago" : s < 3600 ? Math.floor(s / 60) + "m ago" : Math.floor(s / 3600) + "h ago";
}
function counts() {
  let n = 0, running = 0, restarting = 0, stopped = 0, restarts = 0;
  for (const e of nodes.values()) {
    if (e.d.parent === null) continue;
    n++; restarts += e.d.restarts;
    if (e.d.status === "running") running++; else if (e.d.status === "restarting") restarting++; else stopped++;
  }
  countsEl.textContent = n + " children · " + running + " running · " + restarting + " restarting · " + stopped + " stopped · " + restarts + " restarts";
}
setInterval(() => { for (const e of nodes.values()) if (e.d.lastFaultAt) ago(e); }, 1000);

// ---- collapse, select
treeEl.addEventListener("click", (ev) => {
  const n = ev.target.closest(".n");
  if (!n) return;
  const path = n.dataset.path;
  if (ev.target.classList.contains("t")) {
    const isClosed = n.classList.toggle("closed");
    if (isClosed) { closed.add(path); opened.delete(path); } else { closed.delete(path); opened.add(path); }
    return;
  }
  if (selected) nodes.get(selected)?.el.classList.remove("sel");
  selected = path;
  n.classList.add("sel");
  queueSide();
});
$("#expand").addEventListener("click", () => { for (const [p, e] of nodes) { closed.delete(p); opened.add(p); e.el.classList.remove("closed"); } });
$("#collapse").addEventListener("click", () => { for (const [p, e] of nodes) if (e.d.children.length && e.d.parent !== null) { closed.add(p); opened.delete(p); e.el.classList.add("closed"); } });

// ---- search and the problems filter: matches and their ancestors stay visible
let searchTimer;
qEl.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(filter, 120); });
problemsEl.addEventListener("change", filter);
function queueFilter() { if (!filterQueued) { filterQueued = true; requestAnimationFrame(() => { filterQueued = false; filter(); }); } }
function filter() {
  const q = qEl.value.trim().toLowerCase(), only = problemsEl.checked;
  if (!q && !only) { treeEl.classList.remove("filtering"); return; }
  const show = new Set();
  for (const [p, e] of nodes) {
    const d = e.d;
    const hit = (!q || d.id.toLowerCase().includes(q)) && (!only || (d.parent !== null && (d.status !== "running" || d.restarts > 0 || d.lastFault)));
    if (!hit) continue;
    for (let a = p; a != null && !show.has(a); a = nodes.get(a)?.d.parent) show.add(a);
  }
  for (const [p, e] of nodes) e.el.classList.toggle("v", show.has(p));
  treeEl.classList.add("filtering");
}

// ---- side panel: the selected node, recent execution records
function queueSide() { if (!sideQueued) { sideQueued = true; requestAnimationFrame(() => { sideQueued = false; side(); }); } }
function side() {
  detailEl.textContent = "";
  const e = selected ? nodes.get(selected) : undefined;
  if (!e) { const p = document.createElement("p"); p.className = "empty"; p.textContent = "Click a node for its details."; detailEl.append(p); }
  else {
    const d = e.d, dl = document.createElement("dl");
    const row = (k, v) => { if (v === undefined || v === "") return; const dt = document.createElement("dt"), dd = document.createElement("dd"); dt.textContent = k; dd.textContent = v; dl.append(dt, dd); };
    row("path", d.path.split("/").map(decodeURIComponent).join(" / "));
    row("kind", d.kind); row("status", d.status); row("restarts", String(d.restarts));
    row("device", d.device === undefined ? undefined : "#" + d.device);
    row("strategy", d.strategy);
    row("intensity", d.intensity && d.intensity.used + " of " + d.intensity.allowed + " restarts within " + seconds(d.intensity.period));
    row("tasks", d.tasks === undefined ? undefined : String(d.tasks));
    row("mailbox", d.mailbox === undefined ? undefined : String(d.mailbox));
    row("last fault", d.lastFault);
    row("when", d.lastFaultAt && new Date(d.lastFaultAt).toLocaleTimeString() + " (" + relative(d.lastFaultAt) + ")");
    detailEl.append(dl);
    const parent = d.parent === null ? undefined : nodes.get(d.parent);
    if (actions && parent && parent.d.kind === "supervisor") {
      const bar = document.createElement("p");
      for (const what of ["terminate", "restart"]) {
        const b = document.createElement("button"); b.textContent = what; b.dataset.action = what;
        b.addEventListener("click", () => act(what, d.path)); bar.append(b, " ");
      }
      detailEl.append(bar);
    }
  }
  records(e);
}
function records(e) {
  recordsEl.textContent = "";
  let all = [];
  if (e && e.d.records) all = e.d.records.map((r) => [e.d, r]);
  else if (e && e.d.parent !== null) { const p = nodes.get(e.d.parent); if (p && p.d.records) all = p.d.records.filter((r) => r.name === e.d.id).map((r) => [p.d, r]); }
  else for (const n of nodes.values()) if (n.d.records) for (const r of n.d.records) all.push([n.d, r]);
  all.sort((a, b) => b[1].start + b[1].duration - (a[1].start + a[1].duration));
  if (all.length === 0) { const p = document.createElement("p"); p.className = "empty"; p.textContent = "No execution records yet."; recordsEl.append(p); return; }
  const table = document.createElement("table");
  for (const [owner, r] of all.slice(0, 40)) {
    const tr = document.createElement("tr");
    const cells = [new Date(r.start + r.duration).toLocaleTimeString(), decodeURIComponent(owner.path.split("/").pop()) + "/" + r.name, r.outcome, r.duration + " ms", r.fault || ""];
    cells.forEach((v, i) => { const td = document.createElement("td"); td.textContent = v; if (i === 2) td.className = "o-" + r.outcome; tr.append(td); });
    table.append(tr);
  }
  recordsEl.append(table);
}
async function act(what, path) {
  if (!token && !askToken()) return;
  msgEl.textContent = what + "…";
  try {
    const res = await fetch("actions/" + what, { method: "POST", headers: { ...auth(), "Content-Type": "application/json" }, body: JSON.stringify({ path }) });
    const body = await res.text();
    msgEl.textContent = res.ok ? what + ": done" : what + " refused (" + res.status + "): " + body.trim();
  } catch (err) { msgEl.textContent = what + " failed: " + err; }
}
side();
connect();
`;

const BODY = `<header>
<h1>backplane observer</h1><span id="conn">connecting…</span>
<input id="q" type="search" placeholder="search children by id" autocomplete="off">
<label><input id="problems" type="checkbox"> only problems</label>
<button id="expand" type="button">expand all</button><button id="collapse" type="button">collapse all</button>
<span id="counts"></span>
</header>
<main><div id="tree" role="tree"></div>
<aside><h2>Selected</h2><div id="detail"></div><p id="msg"></p><h2>Recent runs</h2><div id="records"></div></aside></main>`;

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("base64");
}

let built: { html: string; scriptHash: string; styleHash: string } | undefined;

/** @internal The page, and the hashes of its inline script and style for the Content-Security-Policy. Built once. */
export function pageHtml(): { html: string; scriptHash: string; styleHash: string } {
  built ??= {
    html: `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><title>backplane observer</title><style>${STYLE}</style></head>\n<body>${BODY}<script>${SCRIPT}</script></body></html>\n`,
    scriptHash: sha256(SCRIPT),
    styleHash: sha256(STYLE),
  };
  return built;
}
