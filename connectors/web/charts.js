// cascadewatch web: one asset's history and its charts (uPlot), shared by the live page and the report.
// A classic script: it defines window.CW (no imports, so the report can inline it).
"use strict";
(function (CW) {
  const DIRS = ["down", "up"];
  const COLORS = {
    price: "#e8e8e8", down: "#ff6b5b", up: "#3fc1a5", warn: "#f5b941", crit: "#ff4d6d",
    resolve: "#8a93a6", truth: "rgba(255, 77, 109, 0.16)", grid: "rgba(255,255,255,0.07)", axis: "#9aa3b5",
  };
  CW.COLORS = COLORS;

  // ---- formatting --------------------------------------------------------------------------
  function usd(x) {
    if (x === null || x === undefined || !isFinite(x)) return "–";
    const a = Math.abs(x);
    if (a >= 1e9) return "$" + (x / 1e9).toFixed(2) + "B";
    if (a >= 1e6) return "$" + (x / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return "$" + (x / 1e3).toFixed(1) + "K";
    return "$" + x.toFixed(0);
  }
  function pct(p) { return p === null || p === undefined ? "–" : (100 * p).toFixed(1) + "%"; }
  function num(x, digits) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }
  function time(ms) { return new Date(ms).toISOString().slice(11, 19); }
  CW.fmt = { usd, pct, num, time };

  // [[price, usd], ...] -> Float64Array [price0, usd0, price1, usd1, ...] (an hour of 50 assets' levels fits in ~60 MB)
  function flat(levels) {
    const out = new Float64Array(2 * (levels ? levels.length : 0));
    for (let i = 0; i < out.length / 2; i++) { out[2 * i] = levels[i][0]; out[2 * i + 1] = levels[i][1]; }
    return out;
  }

  // The price a cascade walk of `bps` reaches from `price` in direction `dir`.
  function reachLevel(price, bps, dir) {
    return price === null || bps === null || bps === undefined ? null : price * (1 + (dir === "down" ? -1 : 1) * bps / 1e4);
  }

  // ---- one asset's history -------------------------------------------------------------------
  // Columns of numbers per snapshot second (seconds since the epoch on x), the estimated levels
  // every `levelStep` s (the heatmap's columns), the alerts. `window_s`: how much is kept (null: all).
  class AssetHistory {
    constructor(asset, window_s, levelStep) {
      this.asset = asset;
      this.window_s = window_s;
      this.levelStep = levelStep;
      this.cols = { t: [], price: [], pDown: [], pUp: [], cDown: [], cUp: [], rDown: [], rUp: [],
        liqLong: [], liqShort: [], bid25: [], bid100: [], ask25: [], ask100: [] };
      this.levels = []; // [{t, down: Float64Array [price, usd, ...], up: ...}]
      this.alerts = [];
      this.feed = {}; // venue -> {events: {kind: n}, last: "text", lastTs}
      this.last = null;
    }
    push(s) {
      const c = this.cols, t = s.ts / 1000, d = s.down || {}, u = s.up || {};
      if (c.t.length && t <= c.t[c.t.length - 1]) return false; // a resent latest snapshot
      c.t.push(t); c.price.push(s.price); c.pDown.push(s.prob_down); c.pUp.push(s.prob_up);
      c.cDown.push(d.cluster_price ?? null); c.cUp.push(u.cluster_price ?? null);
      c.rDown.push(reachLevel(s.price, d.reach_bps, "down")); c.rUp.push(reachLevel(s.price, u.reach_bps, "up"));
      c.liqLong.push(s.liq_long_usd_1s); c.liqShort.push(s.liq_short_usd_1s);
      c.bid25.push(s.depth_bid_usd["25"]); c.bid100.push(s.depth_bid_usd["100"]);
      c.ask25.push(s.depth_ask_usd["25"]); c.ask100.push(s.depth_ask_usd["100"]);
      const lastLevels = this.levels[this.levels.length - 1];
      if ((d.levels || u.levels) && (!lastLevels || t - lastLevels.t >= this.levelStep)) {
        this.levels.push({ t, down: flat(d.levels), up: flat(u.levels) });
      }
      for (const entry of s.feed || []) this.noteFeed(entry, t);
      this.last = s;
      this.trim(t);
      return true;
    }
    // The server's history of this asset (FeedHistory: rows of `fields`, levels every minute),
    // put before what the page has received itself.
    prepend(msg) {
      const c = this.cols, first = c.t.length ? c.t[0] : Infinity, at = {};
      msg.fields.forEach((f, i) => { at[f] = i; });
      const rows = msg.rows.filter((r) => r[0] / 1000 < first);
      const col = (f) => rows.map((r) => r[at[f]]);
      const reach = (dir) => rows.map((r) => reachLevel(r[at.price], r[at[dir + ".reach_bps"]], dir));
      const older = {
        t: rows.map((r) => r[0] / 1000), price: col("price"), pDown: col("prob_down"), pUp: col("prob_up"),
        cDown: col("down.cluster_price"), cUp: col("up.cluster_price"), rDown: reach("down"), rUp: reach("up"),
        liqLong: col("liq_long_usd_1s"), liqShort: col("liq_short_usd_1s"), bid25: col("depth_bid_usd.25"),
        bid100: col("depth_bid_usd.100"), ask25: col("depth_ask_usd.25"), ask100: col("depth_ask_usd.100"),
      };
      for (const k in c) c[k] = older[k].concat(c[k]);
      const firstLevels = this.levels.length ? this.levels[0].t : Infinity;
      this.levels = msg.levels.filter((l) => l[0] / 1000 < firstLevels)
        .map((l) => ({ t: l[0] / 1000, down: flat(l[1]), up: flat(l[2]) })).concat(this.levels);
    }
    noteFeed(entry, t) {
      const venue = entry.split(":", 1)[0];
      const kind = (entry.slice(venue.length + 1).trim().split(":", 1)[0] || "?");
      const v = this.feed[venue] || (this.feed[venue] = { events: {}, last: "", lastTs: null });
      v.events[kind] = (v.events[kind] || 0) + 1;
      v.last = entry; v.lastTs = t;
    }
    trim(t) {
      if (this.window_s === null) return;
      const c = this.cols, from = t - this.window_s;
      if (c.t.length > 64 && c.t[63] < from) { // drop in chunks: amortised O(1) per snapshot
        let n = 0;
        while (n < c.t.length && c.t[n] < from) n++;
        for (const k in c) c[k].splice(0, n);
      }
      while (this.levels.length && this.levels[0].t < from - this.levelStep) this.levels.shift();
      while (this.alerts.length > 200) this.alerts.shift();
    }
  }
  CW.AssetHistory = AssetHistory;

  // ---- drawing helpers -------------------------------------------------------------------------
  function clipped(u, draw) {
    const ctx = u.ctx, b = u.bbox;
    ctx.save(); ctx.beginPath(); ctx.rect(b.left, b.top, b.width, b.height); ctx.clip();
    draw(ctx, b); ctx.restore();
  }

  // Estimated liquidation levels behind the price: one column per levels sample, one cell per
  // bucket, alpha 0.9 * (notional / the largest bucket)^0.7; longs red below, shorts green above.
  function drawHeatmap(u, levels) {
    if (!levels.length) return;
    const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
    let max = 0;
    for (const col of levels) for (const dir of DIRS) for (let j = 1; j < col[dir].length; j += 2) if (col[dir][j] > max) max = col[dir][j];
    if (max <= 0) return;
    const dpr = devicePixelRatio || 1;
    clipped(u, (ctx) => {
      for (let i = 0; i < levels.length; i++) {
        const col = levels[i], next = levels[i + 1];
        const t1 = next ? next.t : Math.max(col.t + 1, xmax);
        if (t1 < xmin || col.t > xmax) continue;
        const x0 = u.valToPos(col.t, "x", true), x1 = u.valToPos(t1, "x", true);
        for (const dir of DIRS) {
          const rgb = dir === "down" ? "255,107,91" : "63,193,165";
          const lv = col[dir];
          for (let j = 0; j < lv.length; j += 2) {
            const p = lv[j], notional = lv[j + 1];
            const y0 = u.valToPos(p * 1.0005, "y", true), y1 = u.valToPos(p * 0.9995, "y", true);
            const alpha = 0.9 * Math.pow(notional / max, 0.7);
            if (alpha < 0.02) continue;
            ctx.fillStyle = `rgba(${rgb},${alpha.toFixed(3)})`;
            ctx.fillRect(x0, y0, Math.max(x1 - x0, dpr), Math.max(y1 - y0, dpr));
          }
        }
      }
    });
  }

  // Observed liquidations as marks on the price: a circle per second with any, area ∝ notional.
  function drawLiquidationMarks(u, cols) {
    const dpr = devicePixelRatio || 1;
    clipped(u, (ctx) => {
      for (let i = 0; i < cols.t.length; i++) {
        for (const [usdAmount, color] of [[cols.liqLong[i], COLORS.down], [cols.liqShort[i], COLORS.up]]) {
          if (!usdAmount || cols.price[i] === null) continue;
          const r = Math.min(2 + Math.sqrt(usdAmount / 2e4), 14) * dpr;
          ctx.beginPath();
          ctx.arc(u.valToPos(cols.t[i], "x", true), u.valToPos(cols.price[i], "y", true), r, 0, 2 * Math.PI);
          ctx.fillStyle = color + "aa"; ctx.strokeStyle = "#fff"; ctx.lineWidth = dpr;
          ctx.fill(); ctx.stroke();
        }
      }
    });
  }

  function vline(u, ctx, t, color, label) {
    const x = u.valToPos(t, "x", true), b = u.bbox, dpr = devicePixelRatio || 1;
    if (x < b.left || x > b.left + b.width) return;
    ctx.strokeStyle = color; ctx.lineWidth = 1.5 * dpr; ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.beginPath(); ctx.moveTo(x, b.top); ctx.lineTo(x, b.top + b.height); ctx.stroke(); ctx.setLineDash([]);
    if (label) { ctx.fillStyle = color; ctx.font = `${11 * dpr}px sans-serif`; ctx.fillText(label, x + 3 * dpr, b.top + 12 * dpr); }
  }

  // ---- the charts ----------------------------------------------------------------------------
  const UTC = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); // axes in UTC, as every time in cascadewatch
  const AXIS = { stroke: COLORS.axis, grid: { stroke: COLORS.grid }, ticks: { stroke: COLORS.grid } };

  function priceRange(u, lo, hi) {
    const c = u._cw.history.cols;
    let a = Infinity, b = -Infinity;
    for (const k of ["price", "cDown", "cUp", "rDown", "rUp"]) for (const v of c[k]) if (v !== null) { if (v < a) a = v; if (v > b) b = v; }
    if (!isFinite(a)) return [lo, hi];
    const pad = Math.max((b - a) * 0.05, a * 0.001);
    return [a - pad, b + pad];
  }

  // Price with the estimated levels (heatmap) behind it, observed liquidations as marks, the
  // nearest dense clusters (thick lines) and the reach (bands from the price to the reach level).
  function priceChart(el, history, width) {
    const opts = {
      width, height: 300, legend: { live: false }, tzDate: UTC,
      scales: { x: { time: true }, y: { range: (u, lo, hi) => priceRange(u, lo, hi) } },
      axes: [AXIS, Object.assign({ size: 70 }, AXIS)],
      series: [
        {},
        { label: "price", stroke: COLORS.price, width: 1.5 },
        { label: "cluster down", stroke: "rgba(255,107,91,0.55)", width: 6 },
        { label: "cluster up", stroke: "rgba(63,193,165,0.55)", width: 6 },
        { label: "reach down", stroke: "rgba(255,107,91,0.8)", width: 1, dash: [3, 3] },
        { label: "reach up", stroke: "rgba(63,193,165,0.8)", width: 1, dash: [3, 3] },
      ],
      bands: [
        { series: [1, 4], fill: "rgba(255,107,91,0.10)" },
        { series: [5, 1], fill: "rgba(63,193,165,0.10)" },
      ],
      hooks: {
        drawClear: [(u) => drawHeatmap(u, u._cw.history.levels)],
        draw: [(u) => drawLiquidationMarks(u, u._cw.history.cols)],
      },
    };
    const u = new uPlot(opts, priceData(history), el);
    u._cw = { history };
    return u;
  }
  function priceData(h) { const c = h.cols; return [c.t, c.price, c.cDown, c.cUp, c.rDown, c.rUp]; }

  // P(cascade down) and P(cascade up) with the warning and critical thresholds, the alerts as
  // vertical lines (trigger: severity colour; resolve: grey) and, in the report, the truth's
  // cascades shaded with each first trigger's lead.
  function probChart(el, history, width, extras) {
    const opts = {
      width, height: 200, legend: { live: false }, tzDate: UTC,
      scales: { x: { time: true }, y: { range: [0, 1] } },
      axes: [AXIS, Object.assign({ size: 70, values: (u, v) => v.map((x) => (100 * x).toFixed(0) + "%") }, AXIS)],
      series: [{}, { label: "P(down)", stroke: COLORS.down, width: 2 }, { label: "P(up)", stroke: COLORS.up, width: 2 }],
      hooks: {
        drawClear: [(u) => clipped(u, (ctx, b) => {
          for (const c of u._cw.extras.cascades || []) {
            if (c.asset !== history.asset) continue;
            const x0 = u.valToPos(c.start / 1000, "x", true), x1 = u.valToPos(c.end / 1000, "x", true);
            ctx.fillStyle = COLORS.truth; ctx.fillRect(x0, b.top, Math.max(x1 - x0, 2), b.height);
          }
        })],
        draw: [(u) => clipped(u, (ctx, b) => {
          const th = u._cw.extras.thresholds || {};
          const dpr = devicePixelRatio || 1;
          for (const [key, color] of [["warn_enter", COLORS.warn], ["crit_enter", COLORS.crit]]) {
            if (th[key] === undefined) continue;
            const y = u.valToPos(th[key], "y", true);
            ctx.strokeStyle = color; ctx.lineWidth = dpr; ctx.setLineDash([6 * dpr, 4 * dpr]);
            ctx.beginPath(); ctx.moveTo(b.left, y); ctx.lineTo(b.left + b.width, y); ctx.stroke(); ctx.setLineDash([]);
          }
          for (const a of history.alerts) {
            if (a.kind !== "cascade") continue;
            const color = a.action === "resolve" ? COLORS.resolve : a.severity === "critical" ? COLORS.crit : COLORS.warn;
            const lead = u._cw.extras.leads ? u._cw.extras.leads[a.id] : undefined;
            vline(u, ctx, a.ts / 1000, color, lead === undefined ? "" : `lead ${lead.toFixed(0)} s`);
          }
        })],
      },
    };
    const u = new uPlot(opts, probData(history), el);
    u._cw = { history, extras: extras || {} };
    return u;
  }
  function probData(h) { const c = h.cols; return [c.t, c.pDown, c.pUp]; }

  // Resting notional within 25 and 100 bps of the mid, bids and asks, over time.
  function depthChart(el, history, width) {
    const opts = {
      width, height: 160, legend: { live: false }, tzDate: UTC,
      scales: { x: { time: true } },
      axes: [AXIS, Object.assign({ size: 70, values: (u, v) => v.map(usd) }, AXIS)],
      series: [{},
        { label: "bids 25 bps", stroke: COLORS.up, width: 1.5 }, { label: "bids 100 bps", stroke: COLORS.up, width: 1, dash: [4, 3] },
        { label: "asks 25 bps", stroke: COLORS.down, width: 1.5 }, { label: "asks 100 bps", stroke: COLORS.down, width: 1, dash: [4, 3] }],
    };
    return new uPlot(opts, depthData(history), el);
  }
  function depthData(h) { const c = h.cols; return [c.t, c.bid25, c.bid100, c.ask25, c.ask100]; }

  // The three charts of one asset in `root`; update() redraws them from the history.
  class AssetCharts {
    constructor(root, history, extras) {
      const width = Math.max(root.clientWidth - 8, 480);
      this.history = history;
      this.price = priceChart(root.querySelector(".cw-price"), history, width);
      this.prob = probChart(root.querySelector(".cw-prob"), history, width, extras);
      this.depth = depthChart(root.querySelector(".cw-depth"), history, width);
    }
    update() {
      this.price.setData(priceData(this.history));
      this.prob.setData(probData(this.history));
      this.depth.setData(depthData(this.history));
    }
    destroy() { this.price.destroy(); this.prob.destroy(); this.depth.destroy(); }
  }
  CW.AssetCharts = AssetCharts;

  // ---- tables ----------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }
  CW.el = el;

  function evidence(a) {
    if (a.kind === "feed") return `${a.venue || ""} ${a.problem || ""}`.trim();
    if (a.kind === "contagion") {
      return (a.assets || []).map((m) => `${m.asset} +${m.after_s} s` + (m.cascade ? " (cascade)" : "")).join(" · ");
    }
    const parts = [];
    if (a.probability !== undefined && a.probability !== null) parts.push("p " + pct(a.probability));
    if (a.level) parts.push(`cluster ${a.level} (${num(a.distance_bps, 1)} bps, ${usd(a.cluster_usd)})`);
    if (a.reach_bps !== undefined && a.reach_bps !== null) parts.push(`reach ${num(a.reach_bps, 1)} bps`);
    if (a.liq_usd_60s) parts.push(`liq 60s ${usd(a.liq_usd_60s)}`);
    if (a.cascade) parts.push(a.cascade);
    for (const d of a.drivers || []) parts.push(d.text);
    return parts.join(" · ");
  }

  // The alert log, newest first: time, action, severity, kind/direction, summary, evidence.
  function alertRows(tbody, alerts, leads) {
    tbody.replaceChildren(...alerts.slice().reverse().map((a) => el("tr",
      { class: `cw-alert cw-${a.action} cw-${a.severity}`, "data-id": a.id },
      el("td", {}, time(a.ts)), el("td", {}, a.action), el("td", {}, a.severity),
      el("td", {}, a.kind + (a.direction ? " " + a.direction : "")),
      el("td", { class: "cw-summary" }, a.summary),
      el("td", { class: "cw-evidence" }, evidence(a) + (leads && leads[a.id] !== undefined ? ` · lead ${leads[a.id].toFixed(0)} s` : "")))));
  }
  CW.alertRows = alertRows;

  // Depth within 10/25/50/100 bps per side, with bars scaled to the widest band.
  function depthRows(tbody, s) {
    const max = Math.max(1, ...["10", "25", "50", "100"].flatMap((b) => [s.depth_bid_usd[b], s.depth_ask_usd[b]]));
    const bar = (x, cls) => el("div", { class: "cw-bar " + cls, style: `width:${(100 * x / max).toFixed(1)}%` });
    tbody.replaceChildren(...["10", "25", "50", "100"].map((b) => el("tr", { "data-band": b },
      el("td", {}, b + " bps"), el("td", { class: "cw-num cw-bid" }, usd(s.depth_bid_usd[b])),
      el("td", { class: "cw-bars" }, bar(s.depth_bid_usd[b], "cw-bid"), bar(s.depth_ask_usd[b], "cw-ask")),
      el("td", { class: "cw-num cw-ask" }, usd(s.depth_ask_usd[b])))));
  }
  CW.depthRows = depthRows;

  // The mitigation readouts per direction (the snapshot's down/up): the defence wall that would stop
  // the cascade walk, the suggested maintenance margin and its leverage cap, the at-risk notional
  // that cap pushes out of reach, and the circuit breaker's state.
  function mitigationRows(tbody, s) {
    tbody.replaceChildren(...["down", "up"].map((dir) => {
      const r = s[dir] || {};
      const breaker = r.breaker === undefined ? "–" : r.breaker ? `tripped since ${time(r.breaker_since)}` : "not tripped";
      return el("tr", { "data-direction": dir },
        el("td", {}, dir), el("td", { class: "cw-num" }, usd(r.defence_usd)),
        el("td", { class: "cw-num" }, r.margin_mmr === null || r.margin_mmr === undefined ? "–" : (100 * r.margin_mmr).toFixed(2) + "%"),
        el("td", { class: "cw-num" }, r.leverage_cap === null || r.leverage_cap === undefined ? "–" : num(r.leverage_cap, 1) + "x"),
        el("td", { class: "cw-num" }, usd(r.margin_pushed_usd)),
        el("td", {}, breaker));
    }));
  }
  CW.mitigationRows = mitigationRows;

  // Feed health per venue: whether it is live, its events so far (connect, disconnect, gap, ...) and the last one.
  function feedRows(tbody, history) {
    const s = history.last;
    const venues = new Set([...(s ? s.venues : []), ...Object.keys(history.feed)]);
    tbody.replaceChildren(...[...venues].sort().map((v) => {
      const f = history.feed[v] || { events: {}, last: "", lastTs: null };
      const live = s && s.venues.includes(v);
      const counts = Object.entries(f.events).map(([k, n]) => `${k} ${n}`).join(", ") || "none";
      return el("tr", { class: live ? "cw-ok" : "cw-bad", "data-venue": v },
        el("td", {}, v), el("td", {}, live ? "live" : "silent > 60 s"), el("td", {}, counts),
        el("td", {}, f.lastTs ? `${time(f.lastTs * 1000)} ${f.last}` : ""));
    }));
  }
  CW.feedRows = feedRows;

  // The DOM of one asset's view (live page and report): headline, charts, depth, feed health, mitigation, alert log.
  function assetView(asset) {
    const table = (cls, ...head) => el("table", { class: cls }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))), el("tbody"));
    return el("section", { class: "cw-asset", "data-asset": asset },
      el("h2", {}, asset, " ", el("span", { class: "cw-headline" })),
      el("p", { class: "cw-legend" }, "price (white) over the estimated liquidation levels: longs below (red), shorts above (green); ",
        "circles: observed liquidations; thick lines: nearest dense clusters; shaded: the reach"),
      el("div", { class: "cw-price cw-chart" }),
      el("p", { class: "cw-legend" }, "P(cascade down) red, P(cascade up) green; dashed: warning and critical thresholds; vertical lines: alerts"),
      el("div", { class: "cw-prob cw-chart" }),
      el("div", { class: "cw-depth cw-chart" }),
      el("div", { class: "cw-tables" },
        el("div", {}, el("h3", {}, "depth per side (valid books)"), table("cw-depth-table", "band", "bids", "", "asks")),
        el("div", {}, el("h3", {}, "feed health per venue"), table("cw-feed-table", "venue", "state", "events", "last event")),
        el("div", {}, el("h3", {}, "mitigation per direction"),
          table("cw-mitigation-table", "direction", "defence wall", "suggested margin", "leverage cap", "pushed out of reach", "breaker"))),
      el("h3", {}, "alerts"),
      table("cw-alert-table", "time", "action", "severity", "kind", "summary", "evidence"));
  }
  CW.assetView = assetView;

  // The headline of an asset: price, probabilities, cascade type, books.
  function headline(node, s) {
    const d = s.down || {}, u = s.up || {};
    node.textContent = `${s.price ?? "–"} · P(down) ${pct(s.prob_down)} · P(up) ${pct(s.prob_up)}` +
      (d.cascade ? ` · ${d.cascade} down` : "") + (u.cascade ? ` · ${u.cascade} up` : "") +
      ` · books ${s.books_valid} · ${time(s.ts)} UTC`;
  }
  CW.headline = headline;
})((window.CW = window.CW || {}));
