// kefu agent console: vanilla JS over the agent API (/v1/agents/...). No build step.
// State lives in `state`; every change re-renders the affected part. The WebSocket pushes desk
// events and user messages; on any event the queue and "mine" are re-read, so the page never
// trusts a partial picture. Suggested replies only fill the reply box: the agent edits and sends.
"use strict";

const state = { token: null, agent: null, current: null, ws: null, retry: 0 };
const $ = (id) => document.getElementById(id);

function setStatus(text) { $("status").textContent = text || ""; }

async function call(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (state.token) headers.authorization = "Bearer " + state.token;
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = new Error((data.error && data.error.message) || resp.statusText);
    err.code = data.error && data.error.code;
    if (err.code === "agent_unauthorized" && path !== "/v1/agents/sign-in") signedOut();
    throw err;
  }
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

async function signIn(ev) {
  ev.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    const data = await call("POST", "/v1/agents/sign-in", { agent: $("agent").value.trim(), secret: $("secret").value });
    state.token = data.token;
    state.agent = data.agent;
    sessionStorage.setItem("kefu-agent-token", data.token);
    signedIn();
  } catch (e) {
    $("sign-in-error").textContent = e.code === "agent_unauthorized" ? "Wrong agent id or secret." : e.message;
  }
}

function signedIn() {
  $("sign-in-view").hidden = true;
  $("desk-view").hidden = false;
  $("whoami").hidden = false;
  $("agent-name").textContent = state.agent.name + " (" + state.agent.id + ")";
  $("presence").value = state.agent.presence;
  connect();
  refresh();
}

function signedOut() {
  state.token = null; state.agent = null; state.current = null;
  sessionStorage.removeItem("kefu-agent-token");
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  $("sign-in-view").hidden = false;
  $("desk-view").hidden = true;
  $("whoami").hidden = true;
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(proto + "//" + location.host + "/v1/agents/ws?token=" + encodeURIComponent(state.token));
  state.ws = ws;
  ws.onopen = () => { state.retry = 0; setStatus("Connected."); };
  ws.onmessage = (msg) => {
    let frame;
    try { frame = JSON.parse(msg.data); } catch { return; }
    if (frame.type === "user_message" && frame.session === state.current) {
      appendEntry({ role: "user", text: frame.text, at_ms: frame.at_ms });
      renderSuggestions(null);
    }
    if (frame.type === "suggestions" && frame.session === state.current) renderSuggestions(frame);
    if (frame.type === "summary" && frame.session === state.current) {
      renderSummary(frame.summary, frame.source, null);
    }
    if (frame.type === "sla_breached" && frame.agent === state.agent.id) {
      setStatus("First-reply time exceeded for " + frame.session + " — please answer.");
    }
    refresh();
  };
  ws.onclose = () => {
    if (!state.token) return;
    setStatus("Disconnected; reconnecting…");
    const delay = Math.min(10000, 500 * 2 ** state.retry++);
    setTimeout(() => { if (state.token) connect(); }, delay);
  };
}

async function refresh() {
  if (!state.token) return;
  try {
    const [queue, me] = await Promise.all([call("GET", "/v1/agents/queue"), call("GET", "/v1/agents/me")]);
    state.agent = me;
    renderQueue(queue.queue);
    renderMine(me.conversations);
    if (state.current && !me.conversations.includes(state.current)) closeView();
  } catch (e) { setStatus(e.message); }
}

function renderQueue(items) {
  $("queue-count").textContent = String(items.length);
  const list = $("queue");
  list.replaceChildren(...items.map((t) => {
    const accept = el("button", { class: "accept", type: "button", "data-session": t.session, textContent: "Accept" });
    accept.onclick = (ev) => { ev.stopPropagation(); acceptConversation(t.session); };
    return el("li", { "data-session": t.session },
      el("strong", {}, t.user + " · " + t.session),
      el("span", { class: "meta" }, (t.tier ? "VIP " + t.tier + " · " : "") + (t.skill || "general") + " · " + t.lang + " · waiting " + t.waited_secs + " s"),
      el("span", { class: "meta" }, t.reason),
      accept);
  }));
}

function renderMine(sessions) {
  $("mine").replaceChildren(...sessions.map((s) => {
    const li = el("li", { "data-session": s, class: s === state.current ? "active" : "" }, el("strong", {}, s));
    li.onclick = () => openConversation(s);
    return li;
  }));
}

async function acceptConversation(session) {
  try {
    await call("POST", "/v1/agents/conversations/" + encodeURIComponent(session) + "/accept");
    await refresh();
    await openConversation(session);
  } catch (e) { setStatus(e.message); refresh(); }
}

function appendEntry(e) {
  const names = { user: "Customer", bot: "Bot", agent: "Agent", system: "" };
  const who = e.role in names ? names[e.role] : e.role;
  const time = e.at_ms ? new Date(e.at_ms).toLocaleTimeString() : "";
  $("transcript").append(el("li", { class: e.role }, el("small", {}, who + " " + time), e.text));
  $("transcript").scrollTop = $("transcript").scrollHeight;
}

async function openConversation(session) {
  try {
    const ctx = await call("GET", "/v1/agents/conversations/" + encodeURIComponent(session));
    state.current = session;
    $("empty").hidden = true;
    $("conversation-view").hidden = false;
    const esc = ctx.ticket.escalation;
    $("conversation-title").textContent = esc.user + " · " + session + (esc.tier ? " · VIP " + esc.tier : "");
    renderSummary(ctx.summary, ctx.summary_source, ctx.summary_note);
    $("transcript").replaceChildren();
    ctx.transcript.forEach(appendEntry);
    renderSuggestions(ctx.suggestions);
    renderMine(state.agent.conversations);
    $("reply-text").focus();
  } catch (e) { setStatus(e.message); }
}

function renderSummary(text, source, note) {
  $("summary").textContent = text;
  const by = source === "llm" ? "Summary by the language model" : "Summary from the conversation";
  $("summary-source").textContent = by + (note ? " (" + note + ")" : "");
  $("summary-source").dataset.source = source || "extractive";
}

// Suggested replies as buttons; a click puts the text in the reply box, nothing is sent.
function renderSuggestions(set) {
  const box = $("suggestions");
  const items = (set && set.items) || [];
  box.hidden = items.length === 0;
  box.replaceChildren(...items.map((s) => {
    const b = el("button", { type: "button", "data-source": s.source },
      el("small", {}, s.source === "llm" ? "Drafted" : "Knowledge base"), s.text);
    b.onclick = () => { $("reply-text").value = s.text; $("reply-text").focus(); };
    return b;
  }));
}

function closeView() {
  state.current = null;
  $("conversation-view").hidden = true;
  $("empty").hidden = false;
}

async function sendReply(ev) {
  ev.preventDefault();
  const text = $("reply-text").value.trim();
  if (!text || !state.current) return;
  try {
    await call("POST", "/v1/agents/conversations/" + encodeURIComponent(state.current) + "/messages", { text });
    appendEntry({ role: "agent", text, at_ms: Date.now() });
    $("reply-text").value = "";
    setStatus("Sent.");
  } catch (e) { setStatus(e.message); }
}

async function act(action, body) {
  if (!state.current) return;
  try {
    await call("POST", "/v1/agents/conversations/" + encodeURIComponent(state.current) + "/" + action, body);
    closeView();
    refresh();
    setStatus(action === "close" ? "Closed." : action === "hand-back" ? "Handed back to the bot." : "Transferred.");
  } catch (e) { setStatus(e.message); }
}

function transfer() {
  const target = $("transfer-target").value.trim();
  if (!target) return;
  act("transfer", target.startsWith("skill:") ? { skill: target.slice(6) } : { agent: target });
}

async function setPresence() {
  try { state.agent = await call("PUT", "/v1/agents/me/presence", { presence: $("presence").value }); refresh(); }
  catch (e) { setStatus(e.message); }
}

async function signOut() {
  try { await call("POST", "/v1/agents/sign-out"); } catch { /* signed out either way */ }
  signedOut();
}

$("sign-in-form").addEventListener("submit", signIn);
$("reply-form").addEventListener("submit", sendReply);
$("hand-back").addEventListener("click", () => act("hand-back"));
$("close").addEventListener("click", () => act("close"));
$("transfer").addEventListener("click", transfer);
$("presence").addEventListener("change", setPresence);
$("sign-out").addEventListener("click", signOut);

(async () => {
  const saved = sessionStorage.getItem("kefu-agent-token");
  if (!saved) return;
  state.token = saved;
  try { state.agent = await call("GET", "/v1/agents/me"); signedIn(); } catch { signedOut(); }
})();
