// The ragfleet console: vanilla JS against the gateway's public API, no build step.
// Everything the API returns is put on the page as text (textContent), never as HTML: the page
// holds an API key, so nothing a document or an answer contains may run as script here.
"use strict";

const KEY_STORAGE = "ragfleet.apiKey";
const COLLECTION_STORAGE = "ragfleet.collection";
const VIEWS = ["search", "chat", "upload", "stats"];
const STATS_INTERVAL_S = 2;
const STATS_POINTS = 60; // two minutes of history at the feed's period
const JOB_POLL_MS = 1000;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 5000, 10000];

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

// -- key, status and errors ------------------------------------------------------------------

const state = { key: "", collection: "default" };

function loadKey() {
  return sessionStorage.getItem(KEY_STORAGE) || localStorage.getItem(KEY_STORAGE) || "";
}

function storeKey(key, remember) {
  sessionStorage.setItem(KEY_STORAGE, key);
  if (remember) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  localStorage.removeItem(KEY_STORAGE);
  state.key = "";
  $("api-key").value = "";
  $("collection").replaceChildren();
  $("collection").disabled = true;
  chat.disconnect();
  setStatus("Key forgotten. Paste a key to continue.");
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

class ApiError extends Error {}

// The API's own words: every error response is {"error": {"code", "message", "request_id"}}.
async function describeFailure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      message = `${body.error.message} (${body.error.code}, HTTP ${response.status})`;
    }
  } catch {
    // not JSON (a proxy's error page): the status line is all there is
  }
  if (response.status === 401) message += ". Check the API key.";
  const retryAfter = response.headers.get("retry-after");
  if (response.status === 429 && retryAfter) message += ` Retry in ${retryAfter} s.`;
  return message;
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.key}`, ...(options.headers || {}) };
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (error) {
    throw new ApiError(`cannot reach the gateway (${error.message}). Is it running?`);
  }
  if (!response.ok) throw new ApiError(await describeFailure(response));
  return response;
}

function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

// Browsers cannot set headers on a WebSocket: the key travels as a subprotocol (never in the URL,
// which proxies log); the gateway answers with the plain "ragfleet" one.
function wsProtocols() {
  return state.key ? ["ragfleet", `ragfleet.key.${state.key}`] : ["ragfleet"];
}

async function connect(event) {
  event?.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) {
    showError("Paste an API key first.");
    return;
  }
  state.key = key;
  showError("");
  setStatus("Checking the key…");
  try {
    await loadCollections();
  } catch (error) {
    setStatus("");
    showError(`The key was not accepted: ${error.message}`);
    return;
  }
  storeKey(key, $("remember-key").checked);
  setStatus(`Connected. ${$("collection").options.length} collection(s) available.`);
  if (currentView() === "chat") chat.connect();
}

async function loadCollections() {
  const body = await (await api("/v1/collections")).json();
  const select = $("collection");
  const wanted = select.value || localStorage.getItem(COLLECTION_STORAGE) || "default";
  const names = body.collections.map((c) => c.name);
  if (!names.includes(wanted)) names.unshift(wanted); // a new collection is created by uploading to it
  select.replaceChildren(
    ...names.map((name) => {
      const info = body.collections.find((c) => c.name === name);
      const label = info ? `${name} (${info.documents} docs, ${info.chunks} chunks)` : `${name} (empty)`;
      return el("option", { value: name }, label);
    }),
  );
  select.value = wanted;
  select.disabled = false;
  state.collection = wanted;
}

// -- views (tabs) ----------------------------------------------------------------------------

function currentView() {
  const name = location.hash.slice(1);
  return VIEWS.includes(name) ? name : "search";
}

function showView(name, focus = false) {
  for (const view of VIEWS) {
    const selected = view === name;
    const tab = $(`tab-${view}`);
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`view-${view}`).hidden = !selected;
  }
  if (focus) $(`tab-${name}`).focus();
  if (name === "stats") stats.start();
  else stats.stop();
  if (name === "chat" && state.key) chat.connect();
}

function setUpTabs() {
  const tabs = $("tabs");
  tabs.addEventListener("click", (event) => {
    const view = event.target.closest("[role=tab]")?.dataset.view;
    if (view) location.hash = view;
  });
  // Arrow keys move between tabs, as in every tab list (WAI-ARIA authoring practices).
  tabs.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const index = (VIEWS.indexOf(currentView()) + step + VIEWS.length) % VIEWS.length;
    location.hash = VIEWS[index];
    $(`tab-${VIEWS[index]}`).focus();
  });
  window.addEventListener("hashchange", () => showView(currentView()));
}

// -- search ----------------------------------------------------------------------------------

function syncAlpha() {
  $("alpha-value").textContent = Number($("alpha").value).toFixed(2);
  $("alpha").disabled = $("mode").value !== "hybrid";
}

async function search(event) {
  event.preventDefault();
  if (!requireKey()) return;
  const body = {
    query: $("query").value,
    collection: state.collection,
    mode: $("mode").value,
    top_k: Number($("top-k").value),
  };
  if (body.mode === "hybrid") body.alpha = Number($("alpha").value);
  $("search-summary").textContent = "Searching…";
  try {
    const response = await api("/v1/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const cache = response.headers.get("x-cache") || "not cached";
    const answer = await response.json();
    showError("");
    renderResults(answer, cache);
    addHistory(body, answer, cache);
  } catch (error) {
    $("search-summary").textContent = "";
    showError(`Search failed: ${error.message}`);
  }
}

function renderResults(answer, cache) {
  const count = answer.results.length;
  $("search-summary").replaceChildren(
    `${count} result${count === 1 ? "" : "s"} in ${answer.took_ms.toFixed(1)} ms (${answer.mode}) · X-Cache: `,
    el("span", { class: `cache cache-${cache}`, "data-testid": "x-cache" }, cache),
  );
  $("search-results").replaceChildren(
    ...answer.results.map((hit) =>
      el(
        "li",
        { class: "result" },
        el(
          "p",
          { class: "meta" },
          el("span", { class: "score" }, `score ${hit.score.toFixed(4)}`),
          " · document ",
          el("code", { class: "document-id" }, hit.document_id),
          " · chunk ",
          el("code", {}, hit.id),
        ),
        el("p", { class: "text" }, hit.text),
      ),
    ),
  );
}

function addHistory(request, answer, cache) {
  const row = el(
    "tr",
    {},
    el("td", {}, request.query),
    el("td", {}, request.mode),
    el("td", {}, String(answer.results.length)),
    el("td", {}, `${answer.took_ms.toFixed(1)} ms`),
    el("td", {}, el("span", { class: `cache cache-${cache}` }, cache)),
  );
  const history = $("search-history");
  history.prepend(row);
  while (history.rows.length > 10) history.deleteRow(-1);
}

function requireKey() {
  if (state.key) return true;
  showError("Paste an API key and press Connect first.");
  $("api-key").focus();
  return false;
}

// -- chat ------------------------------------------------------------------------------------

// One WebSocket; an answer being streamed when the socket drops is resumed from its last event id
// on the next connection (to whichever replica NGINX picks: the events live in Redis).
class ChatConnection {
  constructor() {
    this.socket = null;
    this.sessionId = null;
    this.turn = null; // the answer being streamed: {view, lastEventId, text}
    this.queue = []; // messages typed while (re)connecting
    this.attempt = 0;
    this.reconnectTimer = null;
    this.wanted = false;
  }

  setConnection(text) {
    $("chat-connection").textContent = text;
  }

  connect() {
    this.wanted = true;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
    clearTimeout(this.reconnectTimer);
    this.setConnection(this.attempt ? "reconnecting…" : "connecting…");
    const socket = new WebSocket(wsUrl("/v1/chat/ws"), wsProtocols());
    this.socket = socket;
    socket.addEventListener("open", () => this.opened());
    socket.addEventListener("message", (event) => this.received(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  opened() {
    const resumed = this.attempt > 0 && this.turn;
    this.attempt = 0;
    this.setConnection("connected");
    if (resumed && this.turn.lastEventId) {
      this.turn.view.notes.append(el("p", { class: "note resumed" }, `Connection dropped; resumed after event ${this.turn.lastEventId}.`));
      this.send({ type: "resume", last_event_id: this.turn.lastEventId });
    } else if (resumed) {
      // Nothing of the answer arrived, so there is no event id to resume from.
      this.turn.view.notes.append(el("p", { class: "error" }, "The connection dropped before the answer started. Send the message again."));
      this.finish(this.turn);
    }
    for (const message of this.queue.splice(0)) this.socket.send(JSON.stringify(message));
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    if (!this.wanted) {
      this.setConnection("not connected");
      return;
    }
    // A refused handshake (bad key, rate limit) reaches a browser only as 1006; the key was checked
    // at Connect, so a lasting failure is most likely the gateway being down.
    const delay = RECONNECT_DELAYS_MS[Math.min(this.attempt, RECONNECT_DELAYS_MS.length - 1)];
    this.attempt += 1;
    const reason = event.code === 1006 ? "connection lost" : `closed (${event.code})`;
    this.setConnection(`${reason}; reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${this.attempt})`);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  drop() {
    if (!this.socket) return;
    // The close event schedules a reconnect, which resumes any answer still streaming.
    this.socket.close(4000, "dropped from the console");
  }

  disconnect() {
    this.wanted = false;
    clearTimeout(this.reconnectTimer);
    this.socket?.close(1000);
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
    else {
      this.queue.push(message);
      this.connect();
    }
  }

  ask(text) {
    if (this.turn) {
      showError("Wait for the current answer to finish.");
      return false;
    }
    $("chat-log").append(el("div", { class: "message user" }, el("p", { class: "who" }, "You"), el("p", {}, text)));
    const answer = el("p", { class: "answer" });
    const sources = el("ol", { class: "sources", "aria-label": "Sources" });
    const notes = el("div", { class: "notes" });
    const box = el("div", { class: "message assistant", "aria-busy": "true" }, el("p", { class: "who" }, "ragfleet"), answer, notes, sources);
    $("chat-log").append(box);
    this.turn = { view: { box, answer, sources, notes }, lastEventId: null };
    const message = { type: "chat", message: text, collection: state.collection };
    if (this.sessionId) message.session_id = this.sessionId;
    this.send(message);
    return true;
  }

  received(event) {
    const turn = this.turn;
    if (event.type === "pong" || !turn) return;
    if (event.id) turn.lastEventId = event.id;
    if (event.type === "sources") {
      this.setSession(event.session_id);
      turn.view.sources.replaceChildren(
        ...event.sources.map((source) =>
          el("li", { class: "source" }, el("span", { class: "source-id" }, `[${source.id}] `), el("code", {}, source.document_id), ` · score ${Number(source.score).toFixed(3)} — `, el("span", { class: "text" }, source.text.length > 240 ? `${source.text.slice(0, 240)}…` : source.text)),
        ),
      );
    } else if (event.type === "token") {
      turn.view.answer.append(event.text);
    } else if (event.type === "restart") {
      // The replica generating this answer died; another one starts it again from scratch.
      turn.view.answer.textContent = "";
      turn.view.sources.replaceChildren();
      turn.view.notes.append(el("p", { class: "note restarted" }, "Answer restarted on another replica."));
    } else if (event.type === "done") {
      turn.view.answer.textContent = event.answer;
      turn.view.notes.append(el("p", { class: "note" }, `${event.model} · ${event.finish_reason}`));
      this.setSession(event.session_id);
      this.finish(turn);
    } else if (event.type === "error") {
      const retry = event.retryable ? " Send the message again." : "";
      turn.view.notes.append(el("p", { class: "error" }, `Error: ${event.message} (${event.code}).${retry}`));
      this.finish(turn);
    }
    turn.view.box.scrollIntoView({ block: "end" });
  }

  finish(turn) {
    turn.view.box.setAttribute("aria-busy", "false");
    turn.view.box.dataset.state = "done";
    this.turn = null;
  }

  setSession(sessionId) {
    if (!sessionId) return;
    this.sessionId = sessionId;
    $("chat-session").textContent = `· session ${sessionId}`;
  }

  reset() {
    this.sessionId = null;
    this.turn = null;
    $("chat-session").textContent = "";
    $("chat-log").replaceChildren();
  }
}

const chat = new ChatConnection();

function sendChat(event) {
  event.preventDefault();
  if (!requireKey()) return;
  const input = $("chat-message");
  const text = input.value.trim();
  if (!text) return;
  showError("");
  if (chat.ask(text)) input.value = "";
}

// -- upload ----------------------------------------------------------------------------------

let chosenFiles = [];

function chooseFiles(files) {
  chosenFiles = [...files];
  $("upload-files").replaceChildren(
    ...chosenFiles.map((file) => el("li", {}, `${file.name} (${formatBytes(file.size)})`)),
  );
  $("upload-button").disabled = chosenFiles.length === 0;
}

function formatBytes(bytes) {
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1048576).toFixed(1)} MiB`;
}

function setUpDropZone() {
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    chooseFiles(event.dataTransfer.files);
  });
  $("files").addEventListener("change", (event) => chooseFiles(event.target.files));
}

async function upload(event) {
  event.preventDefault();
  if (!requireKey() || chosenFiles.length === 0) return;
  const form = new FormData();
  for (const file of chosenFiles) form.append("files", file, file.name);
  const collection = state.collection;
  $("upload-button").disabled = true;
  try {
    const response = await api(`/v1/documents?collection=${encodeURIComponent(collection)}`, { method: "POST", body: form });
    const accepted = await response.json();
    showError("");
    chooseFiles([]);
    $("files").value = "";
    await followJob(accepted.job_id, collection);
  } catch (error) {
    showError(`Upload failed: ${error.message}`);
    $("upload-button").disabled = chosenFiles.length === 0;
  }
}

async function followJob(jobId, collection) {
  const title = el("h3", {}, `Job ${jobId}`);
  const bar = el("progress", { max: "1", value: "0", "aria-label": `progress of job ${jobId}` });
  const summary = el("p", { class: "job-state" }, "queued");
  const documents = el("ul", { class: "job-documents" });
  const card = el("article", { class: "job", "data-job-id": jobId }, title, bar, summary, documents);
  $("jobs").prepend(card);
  for (;;) {
    let job;
    try {
      job = await (await api(`/v1/jobs/${jobId}?collection=${encodeURIComponent(collection)}`)).json();
    } catch (error) {
      summary.textContent = `Cannot read the job: ${error.message}`;
      return;
    }
    bar.max = job.documents_total;
    bar.value = job.documents_done;
    summary.textContent = `${job.state}: ${job.documents_done} of ${job.documents_total} document(s) done, ${job.chunks} chunk(s)` + (job.documents_failed ? `, ${job.documents_failed} failed` : "");
    documents.replaceChildren(
      ...job.documents.map((doc) => {
        const detail = doc.error ? ` — ${doc.error}` : doc.chunks_total ? ` (${doc.chunks_done ?? 0}/${doc.chunks_total} chunks)` : doc.chunks ? ` (${doc.chunks} chunks)` : "";
        return el("li", { class: `doc-${doc.state}` }, el("code", {}, doc.document_id), `: ${doc.state}${detail}`);
      }),
    );
    if (job.state === "succeeded" || job.state === "failed") {
      card.dataset.state = job.state;
      loadCollections().catch(() => {}); // refresh the sizes shown in the picker
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
  }
}

// -- live stats ------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

// Lines of one small chart; each series is an array of numbers (null = no value yet), newest
// last and drawn at the right edge, so the chart scrolls left as the feed updates.
function drawLines(svg, series, { max = null, floor = 1e-9, classes = [] } = {}) {
  const [width, height] = [300, 80];
  const step = width / (STATS_POINTS - 1);
  const values = series.flat().filter((v) => v !== null);
  const top = max ?? Math.max(floor, ...values) * 1.1;
  const lines = series.map((points, index) => {
    const coordinates = points
      .map((v, i) => {
        if (v === null) return null;
        const x = width - (points.length - 1 - i) * step;
        return `${x.toFixed(1)},${(height - (v / top) * (height - 4) - 2).toFixed(1)}`;
      })
      .filter(Boolean)
      .join(" ");
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", coordinates);
    line.setAttribute("class", `line ${classes[index] || ""}`);
    return line;
  });
  svg.replaceChildren(...lines);
}

class StatsFeed {
  constructor() {
    this.socket = null;
    this.history = { inFlight: [[], [], []], cache: new Map(), routes: new Map() };
    this.retryTimer = null;
    this.updates = 0;
  }

  start() {
    if (this.socket) return;
    clearTimeout(this.retryTimer);
    $("stats-connection").textContent = "connecting…";
    const socket = new WebSocket(wsUrl(`/v1/stats/ws?interval_s=${STATS_INTERVAL_S}`), wsProtocols());
    this.socket = socket;
    socket.addEventListener("open", () => ($("stats-connection").textContent = `live, every ${STATS_INTERVAL_S} s`));
    socket.addEventListener("message", (event) => this.update(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      $("stats-connection").textContent = "connection lost; retrying in 3 s (the stats may need a key: press Connect)";
      this.retryTimer = setTimeout(() => this.start(), 3000);
    });
  }

  stop() {
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000);
    $("stats-connection").textContent = "paused (open this view to resume)";
  }

  static push(points, value) {
    points.push(value ?? null);
    if (points.length > STATS_POINTS) points.shift();
  }

  update(snapshot) {
    this.updates += 1;
    $("view-stats").dataset.updates = String(this.updates);
    $("stats-replica").textContent = `replica ${snapshot.replica}, up ${Math.round(snapshot.uptime_s)} s`;

    const flight = snapshot.in_flight;
    [flight.http, flight.websockets, flight.generations].forEach((v, i) => StatsFeed.push(this.history.inFlight[i], v));
    drawLines($("chart-in-flight"), this.history.inFlight, { floor: 4, classes: ["s1", "s2", "s3"] });
    $("in-flight-text").replaceChildren(
      el("span", { class: "key s1" }, `HTTP requests ${flight.http}`), " · ",
      el("span", { class: "key s2" }, `WebSockets ${flight.websockets}`), " · ",
      el("span", { class: "key s3" }, `answers generating ${flight.generations}`),
    );

    // One line per tier the gateway reports (hit_rate_edge, hit_rate_l1, hit_rate_l2, ...).
    const seen = snapshot.cache.search_as_seen_by_gateway;
    const tiers = Object.keys(seen).filter((k) => k.startsWith("hit_rate_")).map((k) => k.slice("hit_rate_".length));
    for (const tier of tiers) {
      if (!this.history.cache.has(tier)) this.history.cache.set(tier, []);
      StatsFeed.push(this.history.cache.get(tier), seen[`hit_rate_${tier}`]);
    }
    drawLines($("chart-cache"), tiers.map((tier) => this.history.cache.get(tier)), { max: 1, classes: ["s1", "s2", "s3"] });
    const percent = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)} %`);
    const cacheText = [`Searches through this replica: ${seen.requests}`];
    tiers.forEach((tier, i) => cacheText.push(el("span", { class: `key s${i + 1}` }, `${tier.toUpperCase()} ${percent(seen[`hit_rate_${tier}`])}`)));
    cacheText.push(`any tier ${percent(seen.hit_rate)}`);
    const retrieval = snapshot.cache.retrieval?.caches;
    if (retrieval) {
      cacheText.push("retrieval's own: " + Object.entries(retrieval).map(([name, c]) => `${name} L1 ${percent(c.l1?.hit_rate)}, L2 ${percent(c.l2?.hit_rate)}`).join("; "));
    }
    $("cache-text").replaceChildren(...cacheText.flatMap((part, i) => (i ? [" · ", part] : [part])));

    this.renderRoutes(snapshot.routes);
  }

  renderRoutes(routes) {
    const ms = (v) => (v === undefined ? "–" : `${v.toFixed(1)} ms`);
    const rows = Object.entries(routes).map(([name, route]) => {
      let history = this.history.routes.get(name);
      if (!history) this.history.routes.set(name, (history = [[], [], []]));
      [route.p50_ms, route.p95_ms, route.p99_ms].forEach((v, i) => StatsFeed.push(history[i], v));
      const chart = document.createElementNS(SVG, "svg");
      chart.setAttribute("viewBox", "0 0 300 80");
      chart.setAttribute("preserveAspectRatio", "none");
      chart.setAttribute("class", "chart small");
      chart.setAttribute("aria-hidden", "true"); // the numbers are in the row
      drawLines(chart, history, { floor: 1, classes: ["s1", "s2", "s3"] });
      return el("tr", {}, el("th", { scope: "row" }, el("code", {}, name)), el("td", {}, String(route.count)), el("td", {}, ms(route.p50_ms)), el("td", {}, ms(route.p95_ms)), el("td", {}, ms(route.p99_ms)), el("td", {}, chart));
    });
    $("stats-routes").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6" }, "No requests yet: search or chat, then watch this table."))]));
  }
}

const stats = new StatsFeed();

// -- start -----------------------------------------------------------------------------------

function start() {
  setUpTabs();
  setUpDropZone();
  $("key-form").addEventListener("submit", connect);
  $("forget-key").addEventListener("click", forgetKey);
  $("collection").addEventListener("change", (event) => {
    state.collection = event.target.value;
    localStorage.setItem(COLLECTION_STORAGE, state.collection);
  });
  $("search-form").addEventListener("submit", search);
  $("mode").addEventListener("change", syncAlpha);
  $("alpha").addEventListener("input", syncAlpha);
  syncAlpha();
  $("chat-form").addEventListener("submit", sendChat);
  $("chat-message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) sendChat(event);
  });
  $("chat-drop").addEventListener("click", () => chat.drop());
  $("chat-new").addEventListener("click", () => chat.reset());
  $("upload-form").addEventListener("submit", upload);

  const saved = loadKey();
  $("remember-key").checked = Boolean(localStorage.getItem(KEY_STORAGE));
  showView(currentView());
  if (saved) {
    $("api-key").value = saved;
    connect();
  } else {
    setStatus("Paste an API key and press Connect.");
  }
}

start();
