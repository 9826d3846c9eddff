// cascadewatch web: the replay report. Reads the data inlined in the page (script#cw-data) and
// draws, per asset, the same charts as the live page over the whole replay.
"use strict";
(function (CW) {
  const data = JSON.parse(document.getElementById("cw-data").textContent);
  const { el, fmt } = CW;
  const root = document.getElementById("cw-report");

  const histories = new Map();
  for (const s of data.snapshots) {
    if (!histories.has(s.asset)) histories.set(s.asset, new CW.AssetHistory(s.asset, null, data.level_step_s));
    histories.get(s.asset).push(s);
  }
  for (const a of data.alerts) if (histories.has(a.asset)) histories.get(a.asset).alerts.push(a);

  root.append(el("p", {}, `${data.recordings.join(", ")} · ${data.snapshots_total} snapshots` +
    (data.step_s > 1 ? ` (one every ${data.step_s} s shown)` : "") +
    ` · ${data.alerts.length} alerts · ${data.cascades.length} labelled cascades` + (data.truth ? "" : " (no truth given)")));
  if (data.cascades.length) {
    const rows = data.cascades.map((c) => el("tr", { class: "cw-cascade", "data-asset": c.asset },
      el("td", {}, c.asset), el("td", {}, c.direction), el("td", {}, fmt.time(c.start)), el("td", {}, fmt.time(c.end)),
      el("td", {}, c.first_alert ? `${c.first_alert.severity} at ${fmt.time(c.first_alert.ts)}, lead ${c.first_alert.lead_s.toFixed(0)} s` : "missed")));
    root.append(el("h3", {}, "labelled cascades (truth, shaded on the probability chart)"),
      el("table", { class: "cw-truth-table" }, el("thead", {}, el("tr", {}, ...["asset", "direction", "start", "end", "first alert"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows)));
  }
  if (data.mitigation) {
    // the mitigation lab (cascadewatch mitigate --json): per scenario and lever, mean ± sd over seeds
    const cell = (st, scale, digits) => `${(st.mean / scale).toFixed(digits)} ± ${(st.sd / scale).toFixed(digits)}`;
    const head = ["scenario", "lever", "seeds", "forced M$", "vs none", "move bps", "in cascade s",
      "margin-liquidated M$", "injector loss k$", "breaker s"];
    const rows = data.mitigation.map((e) => el("tr", { class: "cw-lever", "data-lever": e.lever },
      ...[e.scenario, e.lever, e.seeds, cell(e.forced_usd, 1e6, 1),
        e.lever === "none" || e.forced_vs_none === null ? "" : `${e.forced_vs_none >= 0 ? "+" : ""}${(100 * e.forced_vs_none).toFixed(0)} %`,
        cell(e.move_bps, 1, 0), cell(e.cascade_s, 1, 0), cell(e.margin_liquidated_usd, 1e6, 1),
        cell(e.injector_loss_usd, 1e3, 0), cell(e.tripped_s, 1, 0)].map((x) => el("td", {}, x))));
    root.append(el("h3", {}, "mitigation lab (cascadewatch mitigate)"),
      el("table", { class: "cw-lab-table" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows)));
  }
  for (const [asset, h] of [...histories].sort()) {
    const view = CW.assetView(asset);
    root.append(view);
    const charts = new CW.AssetCharts(view, h, { thresholds: data.thresholds, cascades: data.cascades, leads: data.leads });
    charts.update();
    if (!window.cwCharts) window.cwCharts = charts; // the first asset's charts, for the browser test
    CW.headline(view.querySelector(".cw-headline"), h.last);
    CW.depthRows(view.querySelector(".cw-depth-table tbody"), h.last);
    CW.feedRows(view.querySelector(".cw-feed-table tbody"), h);
    CW.mitigationRows(view.querySelector(".cw-mitigation-table tbody"), h.last);
    CW.alertRows(view.querySelector(".cw-alert-table tbody"), h.alerts, data.leads);
  }
  document.body.dataset.ready = "1";
})(window.CW);
