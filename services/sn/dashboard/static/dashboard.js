// fedchain dashboard: plain JS + SVG, no external assets. Live through server-sent events
// (/events); the REST endpoints are read once at load and on a click.
"use strict";

const state = { rounds: new Map(), blocks: new Map(), perEn: new Map(), selected: null, tree: null };
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
}
const short = (id) => (id && id.length > 12 ? id.slice(0, 12) + "…" : id || "");
const fmt = (x, d = 4) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));

async function api(path, options = {}) {
  const r = await fetch(path, options);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.detail) || `${r.status} ${r.statusText}`);
  return body;
}
function authed(method, body) {
  const token = $("token").value.trim();
  if (!token) throw new Error("enter the API token (FEDCHAIN_API_TOKEN) first");
  const headers = { Authorization: "Bearer " + token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
}

// ---- status ----
function showStatus(s) {
  $("st-node").textContent = short(s.node_id);
  $("st-node").title = s.node_id;
  $("st-state").textContent = s.state;
  $("st-algorithm").textContent = s.algorithm;
  $("st-round").textContent = `${s.round} / ${s.target_round}`;
  $("st-version").textContent = "v" + s.model_version;
  $("st-height").textContent = s.height;
  $("st-sns").textContent = s.sns;
  $("st-ens").textContent = s.ens;
  $("st-error").hidden = !s.error;
  $("st-error").textContent = s.error ? "last round failed: " + s.error : "";
}

// ---- node tree ----
function showTree(tree) {
  state.tree = tree;
  const rows = $("tree-rows");
  rows.replaceChildren();
  for (const sn of tree.sns) {
    const tr = el("tr", { class: "sn", "data-node-id": sn.node_id });
    tr.append(el("td", { title: sn.node_id }, short(sn.node_id)), el("td", {}, sn.entry ? "M-SN" : "SN"),
      el("td", { class: sn.status }, sn.status), el("td", {}, sn.address), el("td", {}, sn.http_address),
      el("td", {}, `${sn.alive_ens} / ${sn.ens.length}`));
    rows.append(tr);
    for (const en of sn.ens) {
      const r = el("tr", { class: "en", "data-node-id": en.node_id });
      r.append(el("td", { title: en.node_id }, "  └ " + short(en.node_id)),
        el("td", {}, `EN #${en.partition_index}`), el("td", { class: en.status }, en.status),
        el("td", {}, en.address), el("td", {}, en.http_address), el("td", {}, ""));
      rows.append(r);
    }
  }
  drawTree(tree);
}

function drawTree(tree) {
  const svg = $("tree-svg");
  const width = svg.clientWidth || 700;
  svg.replaceChildren();
  const ens = tree.sns.flatMap((sn) => sn.ens.map((en) => ({ en, sn })));
  const entry = tree.sns.find((s) => s.entry);
  const others = tree.sns.filter((s) => !s.entry);
  const rootX = width / 2, rootY = 30, snY = 115, enY = 205;
  // The entry is the root (M-SN) and also the SN of its own ENs: draw it on the SN level too.
  const level = entry && entry.ens.length ? [entry, ...others] : others;
  const snX = new Map(level.map((s, i) => [s.node_id, ((i + 0.5) * width) / Math.max(1, level.length)]));
  const enX = (i) => ((i + 0.5) * width) / Math.max(1, ens.length);
  const color = (status) => (status === "alive" ? "#1b7f3b" : "#b3261e");
  const line = (x1, y1, x2, y2) => svg.append(svgEl("line", { x1, y1, x2, y2, stroke: "#bbb" }));
  for (const s of level) line(rootX, rootY, snX.get(s.node_id), snY);
  ens.forEach(({ en, sn }, i) => line(snX.get(sn.node_id), snY, enX(i), enY));
  const node = (x, y, r, status, label, sub, title) => {
    const g = svgEl("g");
    g.append(svgEl("title", {}, title));
    g.append(svgEl("circle", { cx: x, cy: y, r, fill: color(status), stroke: "#fff", "stroke-width": 2 }));
    g.append(svgEl("text", { x, y: y + r + 13, "text-anchor": "middle", "font-size": 11 }, label));
    if (sub) g.append(svgEl("text", { x, y: y + r + 25, "text-anchor": "middle", "font-size": 10, fill: "#666" }, sub));
    svg.append(g);
  };
  if (entry) node(rootX, rootY, 12, entry.status, "M-SN " + short(entry.node_id), entry.address, entry.node_id);
  for (const s of level) {
    node(snX.get(s.node_id), snY, 10, s.status, (s.entry ? "M-SN (own ENs) " : "SN ") + short(s.node_id),
      `${s.alive_ens}/${s.ens.length} ENs · ${s.address}`, s.node_id);
  }
  ens.forEach(({ en }, i) => node(enX(i), enY, 7, en.status, `EN #${en.partition_index}`, en.address, en.node_id));
}

// ---- rounds ----
function addRound(r) {
  state.rounds.set(r.round, r);
  showRounds();
}
function showRounds() {
  const rows = $("round-rows");
  rows.replaceChildren();
  const list = [...state.rounds.values()].sort((a, b) => b.round - a.round);
  for (const r of list) {
    const tr = el("tr", { class: "clickable round", "data-round": r.round });
    if (state.selected === r.round) tr.classList.add("selected");
    const rejected = r.rejected || [];
    tr.append(el("td", {}, r.round), el("td", {}, r.algorithm), el("td", {}, "v" + r.model_version),
      el("td", {}, fmt(r.accuracy)), el("td", {}, fmt(r.loss)), el("td", {}, (r.participants || []).length),
      el("td", { class: rejected.length ? "dead" : "" }, rejected.length), el("td", {}, fmt(r.seconds, 1)),
      el("td", {}, r.height));
    tr.addEventListener("click", () => showEvidence(r.round));
    rows.append(tr);
  }
  drawCurve();
}

function drawCurve() {
  const svg = $("curve");
  const W = svg.clientWidth || 700, H = 220, L = 40, R = 40, T = 10, B = 28;
  svg.replaceChildren();
  const rounds = [...state.rounds.values()].sort((a, b) => a.round - b.round);
  const maxRound = Math.max(1, ...rounds.map((r) => r.round), ...[...state.perEn.values()].flatMap((m) => [...m.keys()]));
  const losses = rounds.map((r) => r.loss).filter((x) => x !== null && x !== undefined);
  const maxLoss = Math.max(1e-9, ...losses);
  const x = (round) => L + ((round - (maxRound > 1 ? 1 : 0)) / Math.max(1, maxRound - 1)) * (W - L - R);
  const yAcc = (a) => T + (1 - a) * (H - T - B);
  const yLoss = (l) => T + (1 - l / maxLoss) * (H - T - B);
  svg.append(svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
  svg.append(svgEl("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }));
  for (const a of [0, 0.5, 1]) {
    svg.append(svgEl("text", { x: L - 4, y: yAcc(a) + 4, "text-anchor": "end", "font-size": 10, fill: "#1f5fbf" }, a));
  }
  svg.append(svgEl("text", { x: W - R + 4, y: T + 8, "font-size": 10, fill: "#c46a00" }, fmt(maxLoss, 2)));
  svg.append(svgEl("text", { x: W - R + 4, y: H - B, "font-size": 10, fill: "#c46a00" }, "0"));
  const ticks = Math.min(maxRound, 10);
  for (let i = 0; i < ticks; i++) {
    const round = Math.round(1 + (i * (maxRound - 1)) / Math.max(1, ticks - 1));
    svg.append(svgEl("text", { x: x(round), y: H - B + 14, "text-anchor": "middle", "font-size": 10 }, round));
  }
  svg.append(svgEl("text", { x: (W - R + L) / 2, y: H - 2, "text-anchor": "middle", "font-size": 10, fill: "#666" }, "round"));
  const path = (points, stroke, width, dash, cls) => {
    if (!points.length) return;
    const d = points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
    svg.append(svgEl("path", { d, fill: "none", stroke, "stroke-width": width, "stroke-dasharray": dash, class: cls }));
    for (const [px, py] of points) svg.append(svgEl("circle", { cx: px, cy: py, r: 2.5, fill: stroke, class: cls }));
  };
  const palette = ["#7b4fbf", "#2a9d8f", "#e76f51", "#8d99ae", "#bc4749", "#386641", "#6d597a", "#f4a261"];
  let i = 0;
  const legend = $("per-en-legend");
  legend.replaceChildren();
  for (const [node, series] of state.perEn) {
    const c = palette[i++ % palette.length];
    path([...series].sort((a, b) => a[0] - b[0]).map(([r, a]) => [x(r), yAcc(a)]), c, 1, "3 2", "per-en");
    const k = el("span", { class: "k", style: `background:${c}` });
    legend.append(k, document.createTextNode(" EN " + short(node)));
  }
  path(rounds.filter((r) => r.accuracy != null).map((r) => [x(r.round), yAcc(r.accuracy)]), "#1f5fbf", 2, "", "acc");
  path(rounds.filter((r) => r.loss != null).map((r) => [x(r.round), yLoss(r.loss)]), "#c46a00", 2, "", "loss");
}

function perEnFrom(round, clients) {
  for (const c of clients || []) {
    if (c.accuracy === undefined || c.node_id === undefined) continue;
    if (!state.perEn.has(c.node_id)) state.perEn.set(c.node_id, new Map());
    state.perEn.get(c.node_id).set(round, c.accuracy);
  }
}

// A round's evidence: GET /rounds/{r} when the entry has it, else the /rounds row.
async function showEvidence(round) {
  state.selected = round;
  showRounds();
  let data = state.rounds.get(round), source = "/rounds";
  try { data = await api(`/rounds/${round}`); source = `/rounds/${round}`; } catch (e) { /* not on this entry */ }
  $("evidence").hidden = false;
  $("evidence-title").textContent = `Round ${round} evidence (${source})`;
  const body = $("evidence-body");
  body.replaceChildren();
  const participants = data.participants || [];
  const ul = el("ul");
  for (const p of participants) {
    const id = typeof p === "string" ? p : p.node_id;
    ul.append(el("li", { title: id }, typeof p === "string" ? id : `${id} ${JSON.stringify(Object.fromEntries(Object.entries(p).filter(([k]) => k !== "node_id")))}`));
  }
  body.append(el("h4", {}, `participants (${participants.length})`), ul);
  const rejected = data.rejected || [];
  const table = el("table");
  const head = el("tr");
  head.append(el("th", {}, "rejected node"), el("th", {}, "reason"));
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const tb = el("tbody");
  for (const r of rejected) {
    const tr = el("tr", { class: "rejected" });
    tr.append(el("td", { title: r.node_id }, r.node_id), el("td", {}, r.reason));
    tb.append(tr);
  }
  if (!rejected.length) {
    const none = el("tr");
    none.append(el("td", { colspan: 2 }, "none"));
    tb.append(none);
  }
  table.append(tb);
  body.append(el("h4", {}, `rejected updates (${rejected.length})`), table);
  perEnFrom(round, data.clients || data.evaluations);
  drawCurve();
  $("evidence-raw").textContent = JSON.stringify(data, null, 2);
}

// ---- chain ----
function addBlock(b) {
  state.blocks.set(b.height, b);
  const rows = $("block-rows");
  rows.replaceChildren();
  const list = [...state.blocks.values()].sort((a, c) => c.height - a.height).slice(0, 50);
  for (const x of list) {
    const tr = el("tr", { class: "block", "data-height": x.height });
    tr.append(el("td", {}, x.height), el("td", {}, x.kind), el("td", { title: x.hash }, x.hash.slice(0, 16) + "…"),
      el("td", { title: x.producer }, short(x.producer)), el("td", {}, new Date(x.timestamp_ms).toLocaleTimeString()));
    rows.append(tr);
  }
}

async function verify() {
  const out = $("verify-result");
  out.className = "result";
  out.textContent = "verifying…";
  try {
    const v = await api("/verify");
    out.className = "result " + (v.ok ? "ok" : "bad");
    out.textContent = v.ok ? `ok: ${v.checked} blocks checked (height ${v.height})` : `FAILED: ${v.reason}`;
  } catch (e) {
    out.className = "result bad";
    out.textContent = e.message;
  }
}

// ---- controls ----
async function control(what) {
  const out = $("control-result");
  out.className = "result";
  try {
    let answer;
    if (what === "train") {
      const body = { rounds: Number($("rounds").value) };
      if ($("algorithm").value) body.algorithm = $("algorithm").value;
      answer = await api("/train", authed("POST", body));
      out.textContent = `training ${answer.algorithm}: rounds ${answer.start_round}..${answer.target_round}`;
    } else if (what === "pause") {
      answer = await api("/pause", authed("POST"));
      out.textContent = `${answer.status} at round ${answer.round}`;
    } else {
      out.textContent = "evaluating on every EN…";
      answer = await api("/eval", authed("POST"));
      const round = Number($("st-round").textContent.split("/")[0]);
      perEnFrom(round, answer.clients);
      drawCurve();
      out.textContent = `pooled accuracy ${fmt(answer.pooled.accuracy)} over ${answer.clients.length} ENs` +
        (answer.failed.length ? `, ${answer.failed.length} failed` : "");
    }
    out.classList.add("ok");
  } catch (e) {
    out.className = "result bad";
    out.textContent = e.message;
  }
}

// ---- live ----
function connect() {
  const source = new EventSource("/events");
  const badge = $("live");
  source.onopen = () => { badge.className = "badge on"; badge.textContent = "live"; };
  source.onerror = () => { badge.className = "badge off"; badge.textContent = "reconnecting…"; };
  const on = (kind, f) => source.addEventListener(kind, (m) => f(JSON.parse(m.data)[kind]));
  on("status", showStatus);
  on("tree", showTree);
  on("block", addBlock);
  on("round", addRound);
}

async function load() {
  $("train").addEventListener("click", () => control("train"));
  $("pause").addEventListener("click", () => control("pause"));
  $("evaluate").addEventListener("click", () => control("evaluate"));
  $("verify").addEventListener("click", verify);
  window.addEventListener("resize", () => { if (state.tree) drawTree(state.tree); drawCurve(); });
  connect();
  try {
    for (const r of await api("/rounds")) state.rounds.set(r.round, r);
    showRounds();
    for (const b of await api("/blocks?limit=20")) addBlock(b);
  } catch (e) {
    $("verify-result").textContent = e.message;
  }
}
document.addEventListener("DOMContentLoaded", load);
