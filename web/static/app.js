"use strict";
// The autogen-slack playground: start runs, follow their events over a WebSocket, answer
// the decisions and key requests they make. Every text the server sends is put into the
// page with textContent, never innerHTML: agent output is untrusted.

const FINISHED = new Set(["completed", "failed", "cancelled", "interrupted"]);
const STATUS_TEXT = {
  queued: "queued",
  running: "running",
  waiting_credential: "waiting for a key",
  waiting_approval: "waiting for a decision",
};
const REFUSALS = new Set([4400, 4401, 4403, 4404]); // the server said no: retrying cannot help
const BACKOFF_MS = [1000, 2000, 4000, 8000, 10000];
const RUN_LIST_EVERY_MS = 10000;
const LIST_STEP = 20; // runs listed at first, and added by "Show older runs"
const MAX_LISTED = 100; // what GET /tasks gives at most
// A replayed transcript holds a run's old key requests followed by their answers; waiting
// this long before opening the dialog keeps it from flashing up for an answered one.
const CREDENTIAL_DELAY_MS = 300;
const ARGUMENTS_MAX_CHARS = 200;
const SIGNIN_HINT =
  "Sign in with an API token (make one with `python -m store create-token --user YOUR_ID`), " +
  "or open the link `make run` printed.";

const state = {
  session: null,
  runId: null, // the run whose transcript is shown
  runStatus: null,
  lastSeq: 0, // the newest event shown: reconnects ask for what follows it
  socket: null,
  generation: 0, // bumped on every disconnect so a stale socket's events are ignored
  retries: 0,
  retryTimer: null,
  closedFinished: false, // the server closed the socket because the run had finished
  listTimer: null,
  starting: false,
  agentMessages: new Map(), // seq of an agent_message -> its element, for verdicts
  offers: new Map(), // offer key -> {buttons, inputs, status, decided}
  offerOfAction: new Map(), // action id -> offer key
  credentialButtons: new Map(), // request_id -> its "Give the key" button
  pendingCredential: null,
  credentialTimer: null,
  dialogRequest: null, // the key request the dialog is open for
  sendingKey: false,
  listLimit: LIST_STEP,
  appendQueue: [], // transcript nodes appended since the last frame
  followEnd: false, // the reader was at the transcript's end before them
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function truncate(text, max) {
  const value = String(text ?? "");
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

/** A server-provided word made safe as part of a class name. */
function cssToken(value) {
  return String(value ?? "unknown").toLowerCase().replace(/[^a-z0-9_-]+/g, "-").slice(0, 40);
}

/** Text as it is; anything else (arguments, a multimodal message) as JSON. */
const asText = (value) => (typeof value === "string" ? value : JSON.stringify(value) ?? "");

// --- the HTTP API ------------------------------------------------------------------------

/** One request; never throws. Errors come back as {ok: false, data: {error}} so every
 * caller can show `data.error`, whatever went wrong. */
async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, data: { error: "Could not reach the server. Is it running?" } };
  }
  const json = (response.headers.get("content-type") || "").includes("json");
  let data = json ? await response.json().catch(() => null) : null;
  if (!response.ok && !(data && typeof data.error === "string")) {
    data = { error: `The server answered ${response.status}.` };
  }
  // The cookie expired or its token was revoked: every other call would fail the same way.
  if (response.status === 401 && path !== "/session") {
    showSignIn(`Your session has ended. ${SIGNIN_HINT}`);
  }
  return { ok: response.ok, status: response.status, data };
}

const taskPath = (runId, rest = "") => `/tasks/${encodeURIComponent(runId)}${rest}`;

// --- signing in and out ------------------------------------------------------------------

async function loadSession(hint) {
  const { ok, status, data } = await api("GET", "/session");
  if (ok) {
    $("loading").hidden = true;
    showWorkspace(data);
  } else if (status === 401) {
    $("loading").hidden = true;
    showSignIn(hint ?? SIGNIN_HINT);
  } else {
    // The server is down or restarting: say so and try again rather than show a form.
    $("loading").hidden = false;
    $("loading").textContent = `${data.error} Trying again in 5 s…`;
    setTimeout(() => loadSession(hint), 5000);
  }
}

function showSignIn(hint) {
  stopFollowing();
  clearInterval(state.listTimer);
  state.session = null;
  state.runId = null;
  $("transcript").replaceChildren();
  $("run-list").replaceChildren();
  setRunStatus(null);
  $("workspace").hidden = true;
  $("who-box").hidden = true;
  $("signin-section").hidden = false;
  $("signin-hint").textContent = hint;
  for (const id of ["run-notice", "start-error", "connection"]) $(id).textContent = "";
  $("token-input").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("token-input");
  const token = input.value.trim();
  input.value = ""; // the token is not left in the page, whatever the answer
  $("signin-error").textContent = "";
  if (!token) {
    $("signin-error").textContent = "Paste an API token first.";
    input.focus();
    return;
  }
  const { ok, data } = await api("POST", "/session", { token });
  if (!ok) {
    $("signin-error").textContent = data.error;
    input.focus();
    return;
  }
  $("signin-section").hidden = true;
  loadSession();
}

async function signOut() {
  const { ok, status, data } = await api("DELETE", "/session");
  if (!ok && status !== 401) {
    $("run-notice").textContent = data.error;
    return;
  }
  showSignIn(`You are signed out. ${SIGNIN_HINT}`);
}

function showWorkspace(session) {
  state.session = session;
  $("signin-section").hidden = true;
  $("who").textContent = session.local
    ? `${session.user_id} (local)`
    : `${session.user_id} · ${session.workspace_id}`;
  $("who-box").hidden = false;
  fillTeams(session.teams || []);
  $("workspace").hidden = false;
  clearInterval(state.listTimer);
  state.listTimer = setInterval(() => {
    if (!document.hidden) refreshRuns();
  }, RUN_LIST_EVERY_MS);
  refreshRuns();
}

function fillTeams(teams) {
  const select = $("team-select");
  const options = teams.map((team) => {
    const option = el("option", null, team.name);
    option.value = team.name;
    option.title = team.description || "";
    return option;
  });
  if (options.length === 0) {
    const fallback = el("option", null, "Default team");
    fallback.value = ""; // sent as null: the server's default team
    options.push(fallback);
  }
  select.replaceChildren(...options);
  showTeamDescription();
}

function showTeamDescription() {
  const team = (state.session?.teams || []).find((t) => t.name === $("team-select").value);
  $("team-description").textContent = team?.description || "";
}

function providerOf(name) {
  return (state.session?.providers || []).find((p) => p.name === name) || null;
}

// --- starting a run and the run list -----------------------------------------------------

async function startTask() {
  if (state.starting) return; // Ctrl+Enter twice must not start two runs
  const task = $("task-input").value.trim();
  $("start-error").textContent = "";
  if (!task) {
    $("start-error").textContent = "Write a task first.";
    $("task-input").focus();
    return;
  }
  // Not `disabled`: a disabled button drops the keyboard focus to the page's start.
  state.starting = true;
  $("start-button").textContent = "Starting…";
  const { ok, data } = await api("POST", "/start-task", {
    task,
    team: $("team-select").value || null,
  });
  state.starting = false;
  $("start-button").textContent = "Start";
  if (!ok) {
    $("start-error").textContent = data.error;
    return;
  }
  $("task-input").value = "";
  selectRun(data.task_id, data.status);
  refreshRuns();
}

async function refreshRuns() {
  const { ok, data } = await api("GET", `/tasks?limit=${state.listLimit}`);
  if (!ok || !Array.isArray(data)) return []; // keep the old list through a passing failure
  renderRuns(data);
  // As many as asked for: there may be older ones (the API gives at most MAX_LISTED).
  $("more-runs").hidden = data.length < state.listLimit || state.listLimit >= MAX_LISTED;
  noticeContinuedRun(data);
  return data;
}

function renderRuns(runs) {
  const list = $("run-list");
  // Rebuilding the list must not throw the keyboard user's focus back to the page's start.
  const active = document.activeElement;
  const focused = list.contains(active) ? active.dataset.taskId : null;
  list.replaceChildren(...runs.map(runItem));
  $("run-list-empty").hidden = runs.length > 0;
  if (focused) {
    const again = [...list.querySelectorAll("button")].find((b) => b.dataset.taskId === focused);
    if (again) again.focus();
  }
}

function runItem(run) {
  const button = el("button", "run-item");
  button.type = "button";
  button.dataset.taskId = run.task_id;
  if (run.task_id === state.runId) button.setAttribute("aria-current", "true");
  const status = FINISHED.has(run.status) ? run.status : STATUS_TEXT[run.status] || run.status;
  button.append(el("span", `run-badge status-${cssToken(run.status)}`, status));
  button.append(el("span", "run-task", truncate(run.task, 80)));
  const meta = el("span", "run-meta muted");
  if (run.created_at) meta.append(el("time", null, new Date(run.created_at).toLocaleString()));
  if (run.source === "slack") meta.append(el("span", "run-source", "from Slack"));
  button.append(meta);
  button.addEventListener("click", () => selectRun(run.task_id, run.status));
  const item = el("li");
  item.append(button);
  return item;
}

function markSelected() {
  for (const button of $("run-list").querySelectorAll("button")) {
    if (button.dataset.taskId === state.runId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

/** A reply in Slack can continue a finished run; its socket had closed, so follow again. */
function noticeContinuedRun(runs) {
  const shown = runs.find((run) => run.task_id === state.runId);
  if (shown && state.closedFinished && !FINISHED.has(shown.status) && !state.socket) {
    state.closedFinished = false;
    connect();
  }
}

// --- the shown run -----------------------------------------------------------------------

function selectRun(runId, status) {
  stopFollowing();
  state.runId = runId;
  state.lastSeq = 0;
  state.closedFinished = false;
  state.agentMessages.clear();
  state.offers.clear();
  state.offerOfAction.clear();
  state.credentialButtons.clear();
  $("transcript").replaceChildren();
  $("run-notice").textContent = "";
  setRunStatus(status || null);
  markSelected();
  connect();
}

function setRunStatus(status, outcome) {
  state.runStatus = status;
  let text = state.runId ? "loading…" : "No run selected.";
  if (status && FINISHED.has(status)) {
    text = `finished: ${truncate(outcome || status, 140)}`;
  } else if (status) {
    text = STATUS_TEXT[status] || status;
  }
  $("run-status").textContent = text;
  $("run-status").dataset.status = status || "";
  showStatusInList(state.runId, status);
  $("stop-button").disabled = !state.runId || FINISHED.has(status);
}

/** The shown run's badge in the list follows its events, between the list's refreshes. */
function showStatusInList(runId, status) {
  if (!runId || !status) return;
  const item = [...$("run-list").querySelectorAll("button")].find((b) => b.dataset.taskId === runId);
  const badge = item?.querySelector(".run-badge");
  if (!badge) return;
  badge.className = `run-badge status-${cssToken(status)}`;
  badge.textContent = FINISHED.has(status) ? status : STATUS_TEXT[status] || status;
}

async function stopRun() {
  const runId = state.runId;
  if (!runId) return;
  keepFocusOff($("stop-button"));
  $("stop-button").disabled = true;
  const { ok, status, data } = await api("POST", taskPath(runId, "/cancel"));
  if (runId !== state.runId) return;
  if (ok) {
    // The `finished` event follows, unless it came while the answer was on its way.
    if (!FINISHED.has(state.runStatus)) $("run-status").textContent = "stopping…";
    return;
  }
  $("run-notice").textContent = data.error;
  if (status !== 409) $("stop-button").disabled = false;
}

/** Before a focused button is disabled, move the focus to the run's status line, so a
 * keyboard user stays where they were instead of falling back to the page's start. */
function keepFocusOff(button) {
  if (document.activeElement === button) $("run-status").focus();
}

/**
 * Append to the transcript, keeping it scrolled to the end if the reader was there. Where
 * the reader was is looked at once per frame, not per node: reading the layout after each
 * of thousands of events (a long run replayed) would cost a layout each.
 */
function append(node) {
  if (state.appendQueue.length === 0) {
    state.followEnd = readerAtEnd();
    requestAnimationFrame(flushAppends);
  }
  state.appendQueue.push(node);
  $("transcript").append(node);
  return node;
}

/** The transcript scrolls in its box on a wide screen; on a phone the page itself does. */
function transcriptScroller() {
  const box = $("transcript");
  return getComputedStyle(box).overflowY === "visible" ? document.scrollingElement : box;
}

function readerAtEnd() {
  const scroller = transcriptScroller();
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
}

function flushAppends() {
  state.appendQueue = [];
  if (state.followEnd) {
    const scroller = transcriptScroller();
    scroller.scrollTop = scroller.scrollHeight;
  }
}

function line(className, text) {
  return append(el("p", `line ${className}`, text));
}

// --- the WebSocket -----------------------------------------------------------------------

function connect() {
  const generation = state.generation;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const path = `/ws/${encodeURIComponent(state.runId)}?after=${state.lastSeq}`;
  const url = `${scheme}//${location.host}${path}`;
  let socket;
  try {
    socket = new WebSocket(url);
  } catch {
    scheduleReconnect();
    return;
  }
  state.socket = socket;
  socket.addEventListener("open", () => {
    if (generation === state.generation) $("connection").textContent = "";
  });
  socket.addEventListener("message", (message) => {
    if (generation === state.generation) onSocketMessage(message.data);
  });
  socket.addEventListener("close", (close) => {
    if (generation === state.generation) onSocketClose(close);
  });
}

function onSocketMessage(raw) {
  let event;
  try {
    event = JSON.parse(raw);
  } catch {
    return;
  }
  if (!event || typeof event.seq !== "number") return;
  if (event.seq <= state.lastSeq) return; // seen before a reconnect
  state.lastSeq = event.seq;
  state.retries = 0;
  $("connection").textContent = "";
  try {
    renderEvent(event);
  } catch (error) {
    // One odd event must not stop the rest of the transcript from showing.
    console.error("could not show event", event.type, error);
  }
}

function onSocketClose(close) {
  state.socket = null;
  if (close.code === 1000) {
    state.closedFinished = true;
    return;
  }
  if (REFUSALS.has(close.code)) {
    $("run-notice").textContent = close.reason || "The server refused to show this run.";
    if (close.code === 4401) loadSession(`Your session has ended. ${SIGNIN_HINT}`);
    return;
  }
  scheduleReconnect();
}

function scheduleReconnect() {
  const delay = BACKOFF_MS[Math.min(state.retries, BACKOFF_MS.length - 1)];
  state.retries += 1;
  $("connection").textContent = `Connection lost; reconnecting in ${delay / 1000} s…`;
  clearTimeout(state.retryTimer);
  const generation = state.generation;
  state.retryTimer = setTimeout(() => {
    if (generation === state.generation) connect();
  }, delay);
}

/** Stop following the shown run: its socket, reconnects, a pending key dialog. */
function stopFollowing() {
  state.generation += 1;
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  state.retries = 0;
  if (state.socket) state.socket.close();
  state.socket = null;
  $("connection").textContent = "";
  forgetCredentialRequest();
  if ($("credential-dialog").open) $("credential-dialog").close();
}

// --- rendering events --------------------------------------------------------------------

const RENDERERS = {
  started: renderStarted,
  agent_message: renderAgentMessage,
  verifier_result: renderVerdict,
  actions_offered: renderOffer,
  action_result: renderActionResult,
  credential_request: renderCredentialRequest,
  credential_received: renderCredentialReceived,
  tool_call: (e) =>
    append(toolLine("⚙", `${e.tool} called`, e.arguments, e.decided_by && `by ${e.decided_by}`)),
  tool_result: renderToolResult,
  reply: renderReply,
  info: (e) => e.text && line(e.level === "warning" ? "info-line warning" : "info-line", e.text),
  error: (e) =>
    line("error-line", `Error: ${e.text || "something went wrong"}${e.code ? ` (${e.code})` : ""}`),
  finished: renderFinished,
};

function renderEvent(event) {
  const render = RENDERERS[event.type];
  if (render) render(event);
  else line("info-line", `(${event.type})`);
}

function renderStarted(e) {
  if (!FINISHED.has(state.runStatus)) setRunStatus("running");
  line("started-line", `Task${e.team ? ` for team ${e.team}` : ""}: ${e.task}`);
}

function renderAgentMessage(e) {
  setRunStatus("running");
  const box = el("article", "agent-message");
  const head = el("header", "message-head");
  head.append(el("span", "sender", e.identity?.name || e.sender || "agent"));
  if (e.recipient && e.recipient !== "team") {
    head.append(el("span", "recipient muted", `to ${e.recipient}`)); // "team" is everyone
  }
  if (typeof e.turn === "number") head.append(el("span", "turn muted", `turn ${e.turn}`));
  box.append(head, el("div", "content", asText(e.content)));
  for (const call of e.tool_calls || []) {
    box.append(toolLine("⚙", call.tool || call.name || "tool", call.arguments, call.outcome));
  }
  state.agentMessages.set(e.seq, box);
  append(box);
}

function renderVerdict(e) {
  const verdict = String(e.verdict || "unknown");
  const badge = el("div", `verdict verdict-${cssToken(verdict)}`);
  badge.append(el("span", "verdict-label", `verifier: ${verdict.replace(/_/g, " ")}`));
  if (e.reason) badge.append(el("span", "verdict-reason", e.reason));
  const message = state.agentMessages.get(e.agent_seq);
  if (message) message.append(badge);
  else append(badge);
}

function toolLine(icon, title, args, extra) {
  const node = el("p", "line tool-line");
  node.append(el("span", "tool-icon", icon), el("span", "tool-name", title));
  if (args !== undefined && args !== null) {
    node.append(el("code", "tool-args", truncate(asText(args), ARGUMENTS_MAX_CHARS)));
  }
  if (extra) node.append(el("span", "tool-extra muted", extra));
  return node;
}

function renderToolResult(e) {
  const parts = [e.outcome, typeof e.size === "number" ? `${e.size} chars` : null, e.detail];
  append(toolLine("↳", `${e.tool}`, e.arguments, parts.filter(Boolean).join(" · ")));
}

function renderReply(e) {
  const node = el("p", "line reply-line");
  node.append(el("span", "reply-from", e.user_id || "someone"), el("span", "reply-text", e.text));
  append(node);
}

function renderFinished(e) {
  setRunStatus(e.status || "completed", e.outcome);
  const stats = [
    typeof e.turns === "number" ? `${e.turns} turns` : null,
    typeof e.prompt_tokens === "number"
      ? `${e.prompt_tokens} + ${e.completion_tokens ?? 0} tokens`
      : null,
    typeof e.duration_s === "number" ? `${e.duration_s.toFixed(1)} s` : null,
  ].filter(Boolean);
  const node = el("div", `finished-line status-${cssToken(e.status)}`);
  node.append(el("strong", null, `Finished: ${e.status || "done"}`));
  if (e.outcome) node.append(el("div", "content", e.outcome));
  if (stats.length) node.append(el("div", "muted", stats.join(" · ")));
  append(node);
  for (const offer of state.offers.values()) closeOffer(offer, "The run has finished.");
  forgetCredentialRequest();
  if ($("credential-dialog").open) $("credential-dialog").close();
  refreshRuns();
}

// --- decisions ---------------------------------------------------------------------------

function renderOffer(e) {
  setRunStatus("waiting_approval");
  const runId = state.runId;
  const key = e.offer_id ?? `seq-${e.seq}`;
  const box = el("div", "action-offer");
  box.append(el("p", "offer-reason", e.reason || "A decision is needed."));
  const call = e.tool_call;
  if (call) {
    const who = call.agent ? `${call.agent} → ` : "";
    box.append(toolLine("⚙", `${who}${call.tool}`, call.arguments));
  }
  const offer = { buttons: [], inputs: [], status: el("p", "offer-status muted"), decided: false };
  offer.status.tabIndex = -1; // focus lands here once the clicked button is disabled
  const row = el("div", "offer-buttons");
  for (const action of e.actions || []) {
    let note = null;
    if (action.type === "deny_tool") {
      // A denied tool call's reason goes back to the agent, which then knows what to do instead.
      const label = el("label", "deny-note", "Reason (optional) ");
      note = el("input");
      note.type = "text";
      note.maxLength = 4000;
      label.append(note);
      row.append(label);
      const denying = action; // Enter in the field means "Deny with this reason"
      note.addEventListener("keydown", (event) => {
        if (event.key === "Enter") decide(runId, offer, denying, note);
      });
      offer.inputs.push(note);
    }
    const className = `action-button action-${cssToken(action.type)}`;
    const button = el("button", className, action.label || action.type);
    button.type = "button";
    button.addEventListener("click", () => decide(runId, offer, action, note));
    row.append(button);
    offer.buttons.push(button);
    state.offerOfAction.set(action.id, key);
  }
  box.append(row, offer.status);
  state.offers.set(key, offer);
  append(box);
}

function setOfferEnabled(offer, enabled) {
  for (const control of [...offer.buttons, ...offer.inputs]) control.disabled = !enabled;
}

function closeOffer(offer, text) {
  if (offer.decided) return;
  offer.decided = true;
  setOfferEnabled(offer, false);
  offer.status.textContent = text;
}

async function decide(runId, offer, action, noteInput) {
  if (offer.decided || offer.sending) return;
  offer.sending = true;
  setOfferEnabled(offer, false);
  offer.status.focus();
  offer.status.textContent = "Sending…";
  const note = noteInput && noteInput.value.trim() ? noteInput.value.trim() : null;
  const path = taskPath(runId, `/actions/${encodeURIComponent(action.id)}`);
  const { ok, status, data } = await api("POST", path, { note });
  offer.sending = false;
  if (ok) {
    closeOffer(offer, `You chose “${action.label || action.type}”.`);
  } else if ([403, 404, 409].includes(status)) {
    closeOffer(offer, data.error); // trying again would get the same answer
  } else {
    offer.status.textContent = data.error;
    setOfferEnabled(offer, true);
  }
}

function renderActionResult(e) {
  const detail = e.detail || {};
  const key = detail.offer_id ?? state.offerOfAction.get(detail.action_id);
  const offer = key !== undefined ? state.offers.get(key) : undefined;
  const who = detail.auto ? "automatically" : detail.decided_by ? `by ${detail.decided_by}` : "";
  const note = detail.note ? `: “${detail.note}”` : "";
  const text = `${detail.label || e.action || "Decided"}${who ? ` (${who})` : ""}${note}`;
  if (offer) closeOffer(offer, `Decided: ${text}.`);
  line("action-line", `Decision: ${text}`);
  if (!FINISHED.has(state.runStatus)) setRunStatus("running");
}

// --- key requests ------------------------------------------------------------------------

function renderCredentialRequest(e) {
  setRunStatus("waiting_credential");
  const title = providerOf(e.provider)?.title || `${e.provider} key`;
  const mine = !e.user_id || e.user_id === state.session?.user_id;
  const node = el("p", "line credential-line");
  const whose = mine ? "your" : `${e.user_id}’s`;
  const refused = e.rejected ? " The previous key was refused." : "";
  node.append(el("span", null, `The run needs ${whose} ${title}.${refused}`));
  if (mine) {
    const button = el("button", "credential-open secondary", "Give the key");
    button.type = "button";
    button.addEventListener("click", () => openCredentialDialog(e));
    node.append(" ", button);
    state.credentialButtons.set(e.request_id, button);
    scheduleCredentialDialog(e);
  }
  append(node);
}

function scheduleCredentialDialog(request) {
  forgetCredentialRequest();
  state.pendingCredential = request;
  const generation = state.generation;
  state.credentialTimer = setTimeout(() => {
    const still = state.pendingCredential === request && generation === state.generation;
    if (still && !FINISHED.has(state.runStatus)) openCredentialDialog(request);
  }, CREDENTIAL_DELAY_MS);
}

function forgetCredentialRequest() {
  clearTimeout(state.credentialTimer);
  state.pendingCredential = null;
}

function renderCredentialReceived(e) {
  if (state.pendingCredential?.request_id === e.request_id) forgetCredentialRequest();
  const button = state.credentialButtons.get(e.request_id);
  if (button) {
    keepFocusOff(button);
    button.disabled = true;
  }
  if (state.dialogRequest?.request_id === e.request_id) $("credential-dialog").close();
  if (!FINISHED.has(state.runStatus)) setRunStatus("running");
}

function openCredentialDialog(request) {
  const dialog = $("credential-dialog");
  const provider = providerOf(request.provider);
  state.dialogRequest = request;
  $("credential-title").textContent = `Your ${provider?.title || `${request.provider} key`}`;
  $("credential-description").textContent = request.description || "";
  $("credential-hint").textContent = provider?.hint || "";
  $("credential-rejected").hidden = !request.rejected;
  $("credential-error").textContent = "";
  $("credential-value").value = "";
  if (!dialog.open) dialog.showModal();
  $("credential-value").focus();
}

async function submitCredential(event) {
  event.preventDefault();
  const request = state.dialogRequest;
  const input = $("credential-value");
  const value = input.value;
  input.value = ""; // from here the key lives only in this function, never in the page
  if (!request || state.sendingKey) return;
  $("credential-error").textContent = "";
  if (!value.trim()) {
    $("credential-error").textContent = "Paste the key first.";
    input.focus();
    return;
  }
  const generation = state.generation;
  state.sendingKey = true;
  const { ok, data } = await api("POST", "/credentials", {
    user_id: state.session?.user_id,
    provider: request.provider,
    value,
  });
  state.sendingKey = false;
  // The WebSocket's `credential_received` may have closed the dialog before this answer.
  const stillOpen = state.dialogRequest === request && $("credential-dialog").open;
  if (!ok) {
    if (stillOpen) {
      $("credential-error").textContent = data.error;
      input.focus();
    }
    return;
  }
  if (stillOpen) $("credential-dialog").close();
  if (generation !== state.generation) return; // another run is shown now
  // The run's next events may have come before this answer: say it under the request.
  const stored = el("p", "line info-line", "Key stored; the run resumes.");
  const requestLine = state.credentialButtons.get(request.request_id)?.parentElement;
  if (requestLine?.isConnected) requestLine.after(stored);
  else append(stored);
}

function onCredentialDialogClosed() {
  $("credential-value").value = ""; // Escape or Cancel: nothing typed stays behind
  // `close` fires a task later: the dialog may already be open again for a newer request.
  if ($("credential-dialog").open) return;
  $("credential-error").textContent = "";
  state.dialogRequest = null;
}

// --- wiring ------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout-button").addEventListener("click", signOut);
  $("start-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startTask();
  });
  $("task-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      startTask();
    }
  });
  $("team-select").addEventListener("change", showTeamDescription);
  $("stop-button").addEventListener("click", stopRun);
  $("more-runs").addEventListener("click", () => {
    state.listLimit = Math.min(MAX_LISTED, state.listLimit + LIST_STEP);
    refreshRuns();
  });
  $("credential-form").addEventListener("submit", submitCredential);
  $("credential-cancel").addEventListener("click", () => $("credential-dialog").close());
  $("credential-dialog").addEventListener("close", onCredentialDialogClosed);
}

document.addEventListener("DOMContentLoaded", () => {
  wire();
  loadSession();
});
