// The console's page: renders each snapshot the server pushes over SSE (/api/events).
"use strict";

const $ = (id) => document.getElementById(id);
const LABELS = {
  very_helpful: "Very helpful", helpful: "Helpful", unhelpful: "Not helpful",
  very_unhelpful: "Not at all", regenerate: "Regenerate", continue: "Continue",
};
// Every distinct text each card has shown, in order (what a user saw stream).
window.jitnodeCardTexts = {};
let selected = null;
let last = null;

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// The markdown DingTalk cards use: headings, lists, bold, code, dividers; links as text.
function markdown(text) {
  const inline = (s) => esc(s)
    .replace(/\*\*(.+?)\*\*/g, "<b>$1</b>")
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\[([^\]]+)\]\([^)]*\)/g, "<u>$1</u>");
  const out = [];
  let list = false;
  for (const line of String(text ?? "").split("\n")) {
    const item = /^\s*(?:[-*]|\d+\.)\s+(.*)$/.exec(line);
    if (item) { if (!list) { out.push("<ul>"); list = true; } out.push(`<li>${inline(item[1])}</li>`); continue; }
    if (list) { out.push("</ul>"); list = false; }
    if (/^\s*---+\s*$/.test(line)) out.push("<hr>");
    else if (/^#{1,6}\s/.test(line)) out.push(`<b>${inline(line.replace(/^#+\s*/, ""))}</b><br>`);
    else if (line.trim() === "") out.push("<br>");
    else out.push(`${inline(line)}<br>`);
  }
  if (list) out.push("</ul>");
  return out.join("");
}

async function api(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function renderHeader(s) {
  $("app-name").textContent = s.app;
  const ready = s.readiness.ready;
  $("ready").textContent = ready ? "ready" : "not ready";
  $("ready").className = "badge" + (ready ? " ok" : "");
  $("mode").textContent = s.sandbox ? "sandbox" : "read-only";
}

function renderElements(s) {
  const rows = s.elements.map((e) => {
    const cls = e.state.replace(/ /g, "-");
    return `<tr data-name="${esc(e.fullName)}" class="${e.fullName === selected ? "sel" : ""}">
      <td class="d${Math.min(e.depth, 5)}">${esc(e.fullName)} <span class="kind">${e.kind}</span>
      ${e.error ? `<div class="err">${esc(e.error)}</div>` : ""}</td>
      <td>${e.kind === "instance" ? esc(e.loadTime) : "—"}</td><td><span class="state ${cls}">${esc(e.state)}</span></td></tr>`;
  });
  $("tree").innerHTML = `<tr><th>element</th><th>load time</th><th>state</th></tr>${rows.join("")}`;
  $("events").innerHTML = s.events.slice().reverse().map((ev) =>
    `<li><time>${new Date(ev.atMs).toLocaleTimeString()}</time>${esc(ev.text)}</li>`).join("") || "<li>No events yet.</li>";
  const sel = s.elements.find((e) => e.fullName === selected);
  if (sel) $("config").textContent = sel.config ? JSON.stringify(sel.config, null, 2) : `${sel.fullName}: no config.json`;
}

function renderCard(c) {
  const seen = (window.jitnodeCardTexts[c.id] ||= []);
  if (seen[seen.length - 1] !== c.text) seen.push(c.text);
  // AI (template) cards show their flow status all along; standard cards only while working.
  const flow = c.progress === "working" ? (c.text ? "Answering…" : "Thinking…")
    : c.progress === "failed" ? "Failed" : c.kind === "advanced" ? "Answered" : "";
  const buttons = (c.buttons || []).map((b) =>
    `<button data-card="${esc(c.id)}" data-button="${esc(b.name)}">${esc(LABELS[b.name] || b.name)}</button>`).join("");
  return `<div class="card" data-card-id="${esc(c.id)}" data-progress="${c.progress}">
    ${flow ? `<div class="flow ${c.progress}">${flow}</div>` : ""}
    <div class="body ${c.progress === "working" ? "cursor" : ""}">${markdown(c.text)}</div>
    ${buttons ? `<div class="buttons">${buttons}</div>` : ""}</div>`;
}

function renderChat(s) {
  const box = $("chat");
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  if (!s.sandbox && s.chat.length === 0) {
    box.innerHTML = `<div class="readonly">Read-only: the robot's stored answers appear here. Start <code>jitnode run --sandbox</code> to chat.</div>`;
  } else {
    box.innerHTML = s.chat.map((m) => {
      if (m.card) return renderCard(m.card);
      const who = m.who === "user" ? (m.group ? "you, in the group" : "you") : "robot";
      return `<div class="bubble ${m.who}"><div class="who">${who}</div>${m.markdown ? markdown(m.text) : esc(m.text)}</div>`;
    }).join("");
  }
  if (atEnd) box.scrollTop = box.scrollHeight;
  $("ask").style.display = s.sandbox ? "" : "none";
  const robot = $("robot");
  const names = s.robots.map((r) => r.fullName);
  if (robot.dataset.names !== names.join(",")) {
    robot.innerHTML = names.map((n) => `<option>${esc(n)}</option>`).join("");
    robot.dataset.names = names.join(",");
  }
  const agent = $("agent");
  if (agent.dataset.names !== s.agents.join(",")) {
    agent.innerHTML = s.agents.map((n) => `<option>${esc(n)}</option>`).join("");
    agent.dataset.names = s.agents.join(",");
  }
}

function renderWire(s) {
  const c = s.counters;
  $("counters").innerHTML = Object.entries({ "received": c.received, "ACKed": c.acked, "answered": c.answered,
    "failed": c.failed, "dedupe hits": c.dedupeHits, "reconnects": c.reconnects, "reloads": c.reloads })
    .map(([k, v]) => `<div><b>${v}</b><span>${k}</span></div>`).join("");
  $("wire").innerHTML = `<tr><th>#</th><th>call</th><th>status</th><th>card</th></tr>` +
    s.wire.slice().reverse().slice(0, 40).map((w) => `<tr><td>${w.seq}</td><td>${esc(w.kind)}</td>
      <td>${w.status}${w.error ? ` <span class="err">${esc(w.error)}</span>` : ""}</td><td title="${esc(w.cardId || "")}">${esc((w.cardId || "").slice(0, 10))}${w.cardId ? "…" : ""}</td></tr>`).join("");
  const g = s.gateway || { acks: [], pings: [], connections: [] };
  $("faults").style.display = s.gateway ? "" : "none";
  $("acks").innerHTML = `<tr><th>message</th><th>topic</th><th>conn</th><th>ACK</th><th>ms</th></tr>` +
    g.acks.slice().reverse().slice(0, 40).map((a) => `<tr><td>${esc(a.messageId)}</td><td>${esc(a.topic)}</td>
      <td>${esc(a.connectionId)}</td><td>${esc(a.code)}${a.problems.length ? ` <span class="err">${esc(a.problems.join("; "))}</span>` : ""}</td>
      <td>${Number(a.latencyMs).toFixed(1)}</td></tr>`).join("");
  $("conns").innerHTML = `<tr><th>connection</th><th>clientId</th><th>pushed</th><th>state</th></tr>` +
    g.connections.map((c) => `<tr><td>${esc(c.connectionId)}</td><td>${esc(c.clientId)}</td><td>${c.pushed}</td>
      <td>${c.accepting ? "open" : "disconnecting"}</td></tr>`).join("");
  $("pings").innerHTML = `<tr><th>connection</th><th>ping</th><th>echoed</th></tr>` +
    g.pings.slice().reverse().map((p) => `<tr><td>${esc(p.connectionId)}</td><td>${esc(p.messageId)}</td>
      <td>${p.echoed === null ? "waiting" : p.echoed ? "yes" : "<span class=err>wrong</span>"}</td></tr>`).join("");
}

function renderFeedback(s) {
  const rows = s.feedback.map((f) => `<tr class="feedback-row"><td>${esc(f.ratedAt)}</td>
    <td>${esc(f.rating)}</td><td>${esc(f.robot)}</td><td>${esc(f.question)}</td><td>${esc(String(f.answer ?? "").slice(0, 120))}</td></tr>`);
  $("feedback").innerHTML = `<tr><th>rated</th><th>rating</th><th>robot</th><th>question</th><th>answer</th></tr>` +
    (rows.join("") || `<tr><td colspan="5">No feedback yet: click a button under an answer.</td></tr>`);
}

function render(s) {
  last = s;
  renderHeader(s);
  renderElements(s);
  renderChat(s);
  renderWire(s);
  renderFeedback(s);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("nav button")) {
    b.addEventListener("click", () => {
      for (const x of document.querySelectorAll("nav button")) x.classList.toggle("on", x === b);
      for (const p of document.querySelectorAll(".pane")) p.classList.toggle("on", p.id === `pane-${b.dataset.pane}`);
    });
  }
  $("tree").addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-name]");
    if (tr) { selected = tr.dataset.name; if (last) renderElements(last); }
  });
  $("chat").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-button]");
    if (!b) return;
    b.disabled = true;
    try { await api("/api/click", { cardId: b.dataset.card, button: b.dataset.button }); }
    catch (e) { alert(e.message); b.disabled = false; }
  });
  $("ask").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = $("question");
    if (!q.value.trim()) return;
    $("send").disabled = true;
    try { await api("/api/chat", { text: q.value, group: $("group").checked, robot: $("robot").value || null }); q.value = ""; }
    catch (e) { alert(e.message); }
    finally { $("send").disabled = false; }
  });
  $("faults").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-fault]");
    if (!b) return;
    try { await api("/api/fault", { kind: b.dataset.fault, robot: $("robot").value || null }); }
    catch (e) { alert(e.message); }
  });
  $("kform").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("kanswer").textContent = "Asking…";
    try {
      const r = await api("/api/knowledge", { agent: $("agent").value, question: $("kq").value });
      $("kanswer").innerHTML = markdown(r.result?.answer ?? JSON.stringify(r.result));
      const found = r.passages || [];
      $("passages").innerHTML = `<tr><th>file</th><th>heading</th><th>score</th></tr>` +
        found.map((p) => `<tr><td>${esc(p.file)}</td><td>${esc(p.heading)}</td><td>${esc(p.relevance)}</td></tr>`).join("");
    } catch (e) { $("kanswer").textContent = e.message; }
  });
  const source = new EventSource("/api/events");
  source.addEventListener("state", (ev) => render(JSON.parse(ev.data)));
});
