// cascadewatch web: the live page. Connects to the risk feed it was served by, keeps one
// AssetHistory per asset (the last hour), and redraws at most every RENDER_MS what changed.
"use strict";
(function (CW) {
  // stale: no snapshot for STALE_MS while connected (?stale_s=N in the page's URL; default 5 s)
  const STALE_MS = 1000 * (Number(new URLSearchParams(location.search).get("stale_s")) || 5);
  const WINDOW_S = 3600, LEVEL_STEP_S = 10, RENDER_MS = 250, MAX_RETRY_MS = 10000;
  const TOKEN_KEY = "cascadewatch.token";
  const { el, fmt } = CW;
  const state = {
    assets: new Map(), open: new Map(), thresholds: {}, ws: null, status: "connecting", retryMs: 1000,
    lastSnapshotAt: 0, dirty: new Set(), view: null, charts: null, received: 0,
  };
  window.cwState = state; // for the browser test and the curious

  // ---- status -------------------------------------------------------------------------------
  function setStatus(status, text) {
    state.status = status;
    const node = document.getElementById("cw-status");
    node.dataset.state = status;
    node.textContent = text;
    document.body.dataset.feed = status;
  }

  // ---- connection -----------------------------------------------------------------------------
  function hex(text) {
    return Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function connect() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    let auth;
    try {
      auth = await fetch("api/auth", { headers: token ? { Authorization: "Bearer " + token } : {}, cache: "no-store" });
    } catch (err) {
      return retry("disconnected: the feed does not answer");
    }
    if (auth.status === 401) {
      setStatus("unauthorized", token ? "token refused: enter the feed's token" : "this feed needs a token");
      document.getElementById("cw-token").hidden = false;
      return;
    }
    document.getElementById("cw-token").hidden = true;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const protocols = ["cascadewatch.v1"].concat(token ? ["cascadewatch.token." + hex(token)] : []);
    const ws = new WebSocket(scheme + location.host + "/?recent=1", protocols);
    state.ws = ws;
    ws.onopen = () => {
      state.retryMs = 1000; state.lastSnapshotAt = Date.now(); setStatus("connected", "connected");
      if (state.view) askHistory(state.view);
    };
    ws.onmessage = (event) => receive(JSON.parse(event.data));
    ws.onclose = () => { if (state.ws === ws) { state.ws = null; retry("disconnected"); } };
  }

  // The server's last hour of `asset`, for its view (the page keeps only what it has received).
  function askHistory(asset) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ op: "history", asset }));
  }

  function retry(why) {
    const wait = state.retryMs;
    state.retryMs = Math.min(state.retryMs * 2, MAX_RETRY_MS);
    setStatus("disconnected", `${why}: reconnecting in ${(wait / 1000).toFixed(0)} s`);
    setTimeout(connect, wait);
  }

  function history(asset) {
    let h = state.assets.get(asset);
    if (!h) state.assets.set(asset, (h = new CW.AssetHistory(asset, WINDOW_S, LEVEL_STEP_S)));
    return h;
  }

  function receive(msg) {
    if (msg.type === "snapshot") {
      state.received++;
      state.lastSnapshotAt = Date.now();
      const h = history(msg.asset);
      h.receivedAt = state.lastSnapshotAt;
      if (h.push(msg)) state.dirty.add(msg.asset);
      if (state.status !== "connected") setStatus("connected", "connected");
    } else if (msg.type === "alert") {
      const h = history(msg.asset);
      if (h.alerts.some((a) => a.id === msg.id)) return; // a recent alert sent again after a reconnect
      h.alerts.push(msg);
      if (msg.action === "resolve") state.open.delete(msg.dedup_key); else state.open.set(msg.dedup_key, msg);
      state.dirty.add(msg.asset);
    } else if (msg.type === "history") {
      history(msg.asset).prepend(msg);
      state.dirty.add(msg.asset);
    } else if (msg.type === "hello") {
      state.thresholds = (msg.page && msg.page.thresholds) || {};
    }
  }

  // ---- overview -------------------------------------------------------------------------------
  const SEVERITY = { critical: 3, warning: 2, info: 1 };
  function assetState(asset) {
    let worst = null;
    for (const a of state.open.values()) if (a.asset === asset && (!worst || SEVERITY[a.severity] > SEVERITY[worst.severity])) worst = a;
    return worst;
  }
  function risk(h) { const s = h.last; return s ? Math.max(s.prob_down ?? 0, s.prob_up ?? 0) : 0; }

  function renderOverview() {
    const now = Date.now();
    const rows = [...state.assets.values()].filter((h) => h.last).sort((a, b) => risk(b) - risk(a) || (a.asset < b.asset ? -1 : 1));
    const cell = (field, value, text) => el("td", { "data-field": field, "data-value": value ?? "" }, text);
    document.querySelector("#cw-overview tbody").replaceChildren(...rows.map((h) => {
      const s = h.last, open = assetState(h.asset), d = s.down || {}, u = s.up || {};
      const stale = now - h.receivedAt > STALE_MS;
      return el("tr", { "data-asset": h.asset, class: (open ? "cw-" + open.severity : "") + (stale ? " cw-stale" : "") },
        el("td", {}, el("a", { href: "#/asset/" + encodeURIComponent(h.asset) }, h.asset)),
        cell("price", s.price, s.price ?? "–"),
        cell("prob_down", s.prob_down, fmt.pct(s.prob_down)),
        cell("prob_up", s.prob_up, fmt.pct(s.prob_up)),
        cell("state", open ? open.severity : "calm", open ? `${open.severity} ${open.direction || open.kind}` : "calm"),
        cell("cascade", d.cascade || u.cascade || "", [d.cascade && d.cascade + " down", u.cascade && u.cascade + " up"].filter(Boolean).join(", ") || "–"),
        cell("liq_60s", s.liq_long_usd_60s + s.liq_short_usd_60s, `${fmt.usd(s.liq_long_usd_60s)} / ${fmt.usd(s.liq_short_usd_60s)}`),
        cell("books_valid", s.books_valid, s.books_valid),
        cell("ts", s.ts, fmt.time(s.ts) + (stale ? " (stale)" : "")));
    }));
    document.getElementById("cw-count").textContent = `${rows.length} asset${rows.length === 1 ? "" : "s"}`;
  }

  // ---- asset view -----------------------------------------------------------------------------
  function showAsset(asset) {
    const root = document.getElementById("cw-asset-view");
    if (state.charts) { state.charts.destroy(); state.charts = null; }
    root.replaceChildren(CW.assetView(asset));
    state.view = asset;
    askHistory(asset);
    state.charts = null; // built on the first render, once the section has its width
  }

  function renderAsset() {
    const h = state.assets.get(state.view);
    const section = document.querySelector("#cw-asset-view .cw-asset");
    if (!h || !h.last || !section) return;
    if (!state.charts) state.charts = new CW.AssetCharts(section, h, { thresholds: state.thresholds });
    state.charts.prob._cw.extras.thresholds = state.thresholds;
    state.charts.update();
    CW.headline(section.querySelector(".cw-headline"), h.last);
    CW.depthRows(section.querySelector(".cw-depth-table tbody"), h.last);
    CW.feedRows(section.querySelector(".cw-feed-table tbody"), h);
    CW.mitigationRows(section.querySelector(".cw-mitigation-table tbody"), h.last);
    CW.alertRows(section.querySelector(".cw-alert-table tbody"), h.alerts);
  }

  function route() {
    const match = location.hash.match(/^#\/asset\/(.+)$/);
    const asset = match ? decodeURIComponent(match[1]) : null;
    document.getElementById("cw-overview").hidden = !!asset;
    document.getElementById("cw-asset-view").hidden = !asset;
    if (asset) showAsset(asset); else { if (state.charts) state.charts.destroy(); state.charts = null; state.view = null; }
    state.dirty.add("*");
  }

  function tick() {
    if (state.status === "connected" && Date.now() - state.lastSnapshotAt > STALE_MS) {
      setStatus("stale", `stale: no snapshot for ${((Date.now() - state.lastSnapshotAt) / 1000).toFixed(0)} s`);
    }
    if (!state.dirty.size && state.status === "connected") return;
    const viewDirty = state.dirty.has(state.view) || state.dirty.has("*");
    state.dirty.clear();
    if (state.view === null) renderOverview(); else if (viewDirty) renderAsset();
  }

  document.getElementById("cw-token").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("cw-token-input").value);
    document.getElementById("cw-token-input").value = "";
    setStatus("connecting", "connecting…");
    connect();
  });
  window.addEventListener("hashchange", route);
  route();
  setInterval(tick, RENDER_MS);
  connect();
})(window.CW);
