// The site dashboard: top metrics, the uPlot chart, breakdown panels, filters and live updates.
//
// The page's query string is the dashboard's whole state (period, from/to, compare, metric, interval and
// filters f=name==value), so a URL can be shared and Back undoes a change: every change is a
// history.pushState followed by a reload of the data from the api's JSON endpoints (data-stats-url).
// The server renders the first paint and embeds the overview it computed (#dashboard-data).
import uPlot from "uplot";

const METRIC_LABELS = {
  visitors: "Visitors", visits: "Visits", pageviews: "Pageviews", events: "Events",
  percentage: "%", conversion_rate: "CR", scroll_depth: "Scroll depth", time_on_page: "Time on page",
};
// Metrics whose change between periods is in percentage points (as the server computes it).
const POINTS = new Set(["bounce_rate", "conversion_rate", "scroll_depth"]);
const DIMENSION_LABELS = {
  page: "Page", entry_page: "Entry page", exit_page: "Exit page", hostname: "Hostname", source: "Source",
  referrer: "Referrer", channel: "Channel", utm_medium: "UTM medium", utm_source: "UTM source",
  utm_campaign: "UTM campaign", country: "Country", browser: "Browser", os: "Operating system",
  device: "Device", goal: "Goal", event: "Event",
};
const FIRST_DELAY = 3000;
let regionNames = null;
try { regionNames = new Intl.DisplayNames(["en"], { type: "region" }); } catch (e) { regionNames = null; }

function $(selector, scope) { return (scope || document).querySelector(selector); }
function $$(selector, scope) { return Array.from((scope || document).querySelectorAll(selector)); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) node.append(child);
  return node;
}

export function formatMetric(name, value) {
  if (value === null || value === undefined) return "–";
  // A revenue: Plausible's money object, shown in its short form ($1.7K).
  if (typeof value === "object") return value.short;
  if (name === "bounce_rate" || name === "percentage" || name === "conversion_rate") {
    return `${name === "bounce_rate" ? Math.round(value) : Number(value).toFixed(1).replace(/\.0$/, "")}%`;
  }
  if (name === "scroll_depth") return `${Math.round(value)}%`;
  if (name === "views_per_visit") return Number(value).toFixed(2);
  if (name === "visit_duration" || name === "time_on_page") {
    const seconds = Math.round(value);
    return (seconds >= 60 ? `${Math.floor(seconds / 60)}m ` : "") + `${seconds % 60}s`;
  }
  return Math.round(value).toLocaleString("en-US");
}

function dimensionLabel(name) {
  return name.startsWith("props:") ? name.slice(6) : (DIMENSION_LABELS[name] || name);
}

function valueLabel(name, value) {
  if (name === "country" && regionNames && /^[A-Z]{2}$/.test(value)) {
    try { return `${regionNames.of(value)} (${value})`; } catch (e) { return value; }
  }
  return value;
}

// The current hour in the site's time zone as the analytics service labels hours ("2026-11-26 14:00:00").
function hourIn(timezone) {
  try {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", {
      timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date()).map((part) => [part.type, part.value]));
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:00:00`;
  } catch (e) {
    return new Date().toISOString().slice(0, 13).replace("T", " ") + ":00:00";
  }
}

function todayIn(timezone) {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date());
  } catch (e) {
    return new Date().toISOString().slice(0, 10);
  }
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// The days a period covers ("23 Nov – 29 Nov 2026"), beside the picker: "Last 7 days" ends yesterday and "Last
// 12 months" last month, as on Plausible's dashboard, which a reader cannot guess from the name.
function rangeLabel(from, to) {
  const day = (iso) => {
    const [year, month, date] = iso.split("-").map(Number);
    return { text: `${date} ${MONTHS[month - 1]}`, year };
  };
  const first = day(from);
  const last = day(to);
  if (from === to) return `${last.text} ${last.year}`;
  return `${first.text}${first.year === last.year ? "" : ` ${first.year}`} – ${last.text} ${last.year}`;
}

function tickLabel(label, interval) {
  if (!label) return "";
  if (interval === "hour") return label.slice(11, 16);
  const month = MONTHS[Number(label.slice(5, 7)) - 1];
  if (interval === "month") return `${month} ${label.slice(0, 4)}`;
  return `${month} ${Number(label.slice(8, 10))}`;
}

class Dashboard {
  constructor(root) {
    this.root = root;
    this.statsUrl = root.dataset.statsUrl;
    this.timezone = root.dataset.timezone || "UTC";
    // The period the page was served for when the URL names none (today for a site added today or yesterday,
    // else the last 30 days): the server marks it selected.
    this.defaultPeriod = $("#period").value || "30d";
    this.refreshAfter = Number(root.dataset.refreshAfter || 60) * 1000;
    this.status = $("#dash-status");
    this.chartBox = $("#chart");
    this.chart = null;
    this.overview = null;
    this.insights = null;
    // Each load and each panel request gets a number; an answer that a newer one overtook is dropped
    // (rather than aborting the request, which would show as a failed request).
    this.generation = 0;
    this.panelRequests = {};
    this.lastFetch = Date.now();
    this.refreshTimer = null;
    this.tabs = {};
    for (const panel of $$(".dash-panel[data-panel]")) {
      const tab = $('[role="tab"][aria-selected="true"]', panel);
      if (tab) this.tabs[panel.dataset.panel] = tab.dataset.dimension;
    }
    const embedded = $("#dashboard-data");
    this.firstOverview = embedded ? JSON.parse(embedded.textContent) : null;
  }

  // --- state in the URL ------------------------------------------------------------------------------

  params() { return new URLSearchParams(location.search); }

  navigate(change) {
    const params = this.params();
    change(params);
    const query = params.toString();
    history.pushState(null, "", query ? `?${query}` : location.pathname);
    this.load();
  }

  addFilter(name, value) {
    this.navigate((params) => {
      const kept = params.getAll("f").filter((f) => !f.startsWith(`${name}==`) && !f.startsWith(`${name}!=`));
      params.delete("f");
      for (const f of kept) params.append("f", f);
      params.append("f", `${name}==${value}`);
    });
  }

  removeFilter(param) {
    this.navigate((params) => {
      const kept = params.getAll("f").filter((f) => f !== param);
      params.delete("f");
      for (const f of kept) params.append("f", f);
    });
  }

  // --- data ----------------------------------------------------------------------------------------------

  async getJSON(part, extra) {
    const params = this.params();
    for (const [key, value] of Object.entries(extra || {})) params.set(key, value);
    const response = await fetch(`${this.statsUrl}/${part}?${params}`, {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      throw new Error((body && (body.detail || body.error)) || `the server answered ${response.status}`);
    }
    return body;
  }

  async load({ quiet = false, useEmbedded = false } = {}) {
    const generation = ++this.generation;
    const current = () => generation === this.generation;
    this.syncControls();
    if (!quiet) this.setStatus("Loading…");
    this.root.setAttribute("aria-busy", "true");
    const overview = useEmbedded && this.firstOverview
      ? Promise.resolve(this.firstOverview) : this.getJSON("overview", {});
    const jobs = [
      overview.then((data) => { if (current()) this.renderOverview(data); })
        .then(() => ($("#insights").checked ? this.loadInsights(current) : null)),
      ...Object.keys(this.tabs).map((panel) => this.loadPanel(panel, current)),
      this.loadProperties(current),
    ];
    const results = await Promise.allSettled(jobs);
    if (!current()) return;
    this.root.removeAttribute("aria-busy");
    this.lastFetch = Date.now();
    const failed = results.find((r) => r.status === "rejected");
    if (failed) this.setStatus(`Could not load the dashboard: ${failed.reason.message}`, true);
    else this.setStatus("");
  }

  setStatus(message, isError) {
    this.status.replaceChildren();
    if (!message) return;
    if (!isError) { this.status.textContent = message; return; }
    const retry = el("button", { type: "button", class: "link", text: "Retry" });
    retry.addEventListener("click", () => this.load());
    this.status.append(el("span", { class: "error", text: message }), " ", retry);
  }

  async loadPanel(panel, current) {
    const list = $(`#list-${panel}`);
    const request = (this.panelRequests[panel] || 0) + 1;
    this.panelRequests[panel] = request;
    const fresh = () => request === this.panelRequests[panel] && (!current || current());
    list.setAttribute("aria-busy", "true");
    try {
      const data = await this.getJSON("breakdown", { dimension: this.tabs[panel] });
      if (fresh()) this.renderRows(list, data);
    } catch (error) {
      if (fresh()) list.replaceChildren(el("p", { class: "error", text: error.message }));
      throw error;
    } finally {
      if (fresh()) list.removeAttribute("aria-busy");
    }
  }

  // Anomaly markers and the forecast band from the compute service; drawn over the chart when switched on.
  async loadInsights(current) {
    const list = $("#anomalies");
    try {
      const insights = await this.getJSON("insights", {});
      if (!current() || !$("#insights").checked) return;
      this.insights = insights;
      list.replaceChildren(...insights.anomalies.map((a) => el("li", { text: a.explanation })));
      if (insights.note) list.append(el("li", { class: "dash-muted", text: insights.note }));
      if (this.overview) this.renderChart(this.overview);
    } catch (error) {
      list.replaceChildren(el("li", { class: "error", text: `Anomalies and forecast: ${error.message}` }));
    }
  }

  // A goal's conversion rate between two values of a custom property, over the dashboard's range.
  async compare() {
    const result = $("#compare-result");
    const form = new FormData($("#compare-form"));
    result.textContent = "Comparing…";
    try {
      const answer = await this.getJSON("compare", Object.fromEntries(form.entries()));
      const rate = (segment) => `${segment.label}: ${segment.conversions} of ${segment.visitors} ` +
        `(${(100 * segment.conversion_rate).toFixed(2)} %)`;
      result.replaceChildren(el("strong", { text: answer.verdict }), el("br"),
        `${rate(answer.a)} · ${rate(answer.b)} · P(B beats A) ${(100 * answer.probability_b_beats_a).toFixed(1)} %`);
    } catch (error) {
      result.replaceChildren(el("span", { class: "error", text: error.message }));
    }
  }

  async loadProperties(current) {
    const select = $("#prop-key");
    const list = $("#list-props");
    const { keys } = await this.getJSON("properties", {});
    if (!current()) return;
    const chosen = select.value && keys.includes(select.value) ? select.value : keys[0] || "";
    select.replaceChildren(...(keys.length ? keys.map((key) => el("option", { value: key, text: key }))
      : [el("option", { value: "", text: "No properties yet" })]));
    select.value = chosen;
    if (!chosen) {
      list.replaceChildren(el("p", { class: "dash-muted", text: "No custom properties in this range." }));
      return;
    }
    const data = await this.getJSON("breakdown", { dimension: `props:${chosen}` });
    if (current() && select.value === chosen) this.renderRows(list, data);
  }

  // --- rendering -----------------------------------------------------------------------------------------

  // Why imported stats are not in the numbers, in Plausible's words (its imports_warning), when they are not.
  renderImports(imports) {
    const note = $("#imports-note");
    const reasons = {
      out_of_range: "No imported data in this period.",
      no_imported_data: "",
    };
    const text = imports.imports_warning || reasons[imports.imports_skip_reason] || "";
    note.textContent = text;
    note.hidden = !text;
  }

  renderTiles(data) {
    // The set of tiles depends on the filters (a goal or page filter changes it): rebuild it, and the chart's
    // metric buttons with it, from the server's list.
    $("#top-metrics").replaceChildren(...data.top.map((stat) => el("div", { class: "dash-metric", "data-metric": stat.name },
      el("span", { class: "dash-label", text: stat.label }),
      el("span", { class: "dash-value", id: stat.name === "pageviews" ? "pageviews" : null }),
      el("span", { class: "dash-change" }))));
    $("#chart-metrics").replaceChildren(...data.top.filter((stat) => stat.graphable).map((stat) => el("button", {
      type: "button", "data-chart-metric": stat.name, "aria-pressed": String(stat.name === data.state.metric),
      text: stat.label,
    })));
  }

  renderOverview(data) {
    this.overview = data;
    this.renderTiles(data);
    for (const tile of $$(".dash-metric[data-metric]")) {
      const name = tile.dataset.metric;
      const metric = data.metrics[name];
      const value = $(".dash-value", tile);
      value.textContent = formatMetric(name, metric.value);
      if (name === "pageviews") value.dataset.count = String(Math.round(metric.value));
      const change = $(".dash-change", tile);
      change.className = "dash-change";
      change.textContent = "";
      if (metric.change !== null && metric.change !== undefined) {
        const good = name === "bounce_rate" ? metric.change < 0 : metric.change > 0;
        change.classList.add(metric.change === 0 ? "flat" : good ? "up" : "down");
        change.textContent = `${metric.change > 0 ? "+" : ""}${metric.change}${POINTS.has(name) ? " pts" : "%"}`;
        change.title = `Previous period: ${formatMetric(name, metric.previous)}`;
      }
    }
    $("#period-dates").textContent = data.state.from ? rangeLabel(data.state.from, data.state.to) : "";
    this.renderFilters(data.state.filters);
    this.renderImports(data.imports || {});
    const interval = $("#interval");
    const days = Math.round((Date.parse(data.state.to) - Date.parse(data.state.from)) / 86400000) + 1;
    for (const option of interval.options) {
      // The same limits as the server's (hourly up to 7 days, daily up to 400).
      option.disabled = (option.value === "hour" && days > 7) || (option.value === "day" && days > 400);
    }
    interval.value = data.series.interval;
    this.renderChart(data);
    this.renderAnnotations(data.annotations);
  }

  renderFilters(filters) {
    const list = $("#filters");
    list.replaceChildren(...filters.map((f) => {
      const text = `${dimensionLabel(f.name)} ${f.negated ? "is not" : "is"} ${valueLabel(f.name, f.value)}`;
      const remove = el("button", { type: "button", class: "dash-chip-remove", "aria-label": `Remove filter: ${text}`,
        text: "×" });
      remove.addEventListener("click", () => this.removeFilter(f.param));
      return el("li", { class: "dash-chip", "data-filter": f.param }, el("span", { text }), remove);
    }));
  }

  renderRows(list, data) {
    const [main, ...others] = data.metrics;
    if (!data.rows.length) {
      list.replaceChildren(el("p", { class: "dash-muted", text: data.empty || "No data for this range." }));
      return;
    }
    const max = Math.max(...data.rows.map((row) => row[main])) || 1;
    const head = el("div", { class: "dash-row-head", "aria-hidden": "true" },
      el("span", { text: dimensionLabel(data.dimension) }),
      ...[main, ...others].map((m) => el("span", { class: "dash-num",
        text: (data.labels && data.labels[m]) || METRIC_LABELS[m] || m })));
    const rows = data.rows.map((row) => {
      const label = valueLabel(data.dimension, String(row.value));
      const bar = el("span", { class: "dash-bar", "aria-hidden": "true" });
      bar.style.width = `${Math.max(1, (row[main] / max) * 100)}%`;
      const figures = [main, ...others].map((m) => el("span", { class: "dash-num", text: formatMetric(m, row[m]) }));
      const button = el("button", {
        type: "button", class: "dash-row", "data-value": row.value,
        title: `Filter by ${dimensionLabel(data.dimension)}: ${label}`,
      }, bar, el("span", { class: "dash-row-label" }, el("span", { class: "visually-hidden", text: "Filter by " }), label),
      ...figures);
      button.addEventListener("click", () => this.addFilter(data.dimension, String(row.value)));
      return el("li", {}, button);
    });
    list.replaceChildren(head, el("ol", { class: "dash-rows" }, ...rows));
  }

  renderAnnotations(annotations) {
    const list = $("#annotations");
    list.replaceChildren(...annotations.map((note) => el("li", {},
      el("time", { datetime: note.date, text: note.date }), ` ${note.body}`)));
  }

  chartSize() {
    return { width: Math.max(200, this.chartBox.clientWidth), height: this.chartBox.clientWidth < 500 ? 200 : 260 };
  }

  renderChart(data) {
    const metric = data.state.metric;
    const stat = (data.top || []).find((s) => s.name === metric);
    const metricLabel = stat ? stat.label : (METRIC_LABELS[metric] || metric);
    const insights = $("#insights").checked ? this.insights : null;
    if (!insights) $("#anomalies").replaceChildren();
    const forecast = insights ? insights.forecast.filter((f) => f.label > data.series.labels.at(-1)) : [];
    const labels = [...data.series.labels, ...forecast.map((f) => f.label)];
    const interval = data.series.interval;
    const xs = labels.map((_, i) => i);
    // Hours still to come today are not zeros: leave them out of the line.
    const now = interval === "hour" ? hourIn(this.timezone) : null;
    const observed = data.series[metric].length;
    const values = [xs, labels.map((label, i) => (i >= observed || (now && label > now) ? null : data.series[metric][i]))];
    const series = [{ label: interval === "hour" ? "Hour" : interval === "day" ? "Day" : `${interval[0].toUpperCase()}${interval.slice(1)} of`,
      value: (u, i) => (i === null || i === undefined ? "–" : labels[i] || "–") }, {
      label: metricLabel, stroke: "#2456c7", width: 2, fill: "rgba(36, 86, 199, 0.08)",
      points: { show: labels.length <= 60 },
    }];
    if (data.comparison) {
      const previous = data.comparison.series[metric];
      values.push(xs.map((i) => (i < previous.length ? previous[i] : null)));
      series.push({ label: "Previous period", stroke: "#6b7480", width: 1.5, dash: [6, 4], points: { show: false } });
    }
    const bands = [];
    if (forecast.length) {
      // The band starts at the last observed point so that it visibly continues the line.
      const at = (key) => labels.map((_, i) => (i === observed - 1 ? data.series[metric][i]
        : i >= observed ? forecast[i - observed][key] : null));
      const first = values.length;
      values.push(at("high"), at("yhat"), at("low"));
      series.push({ label: "Forecast 80 % high", stroke: "#7c3aed", width: 1, dash: [4, 4], points: { show: false } },
        { label: "Forecast", stroke: "#7c3aed", width: 1.5, dash: [6, 4], points: { show: false } },
        { label: "Forecast 80 % low", stroke: "#7c3aed", width: 1, dash: [4, 4], points: { show: false } });
      bands.push({ series: [first, first + 2], fill: "rgba(124, 58, 237, 0.12)" });
    }
    const markers = (insights ? insights.anomalies : [])
      .map((a) => ({ index: labels.indexOf(a.label), value: a.value }))
      .filter((m) => m.index >= 0);
    const notes = data.annotations.map((note) => {
      let index = -1;
      labels.forEach((label, i) => { if (label.slice(0, 10) <= note.date) index = i; });
      return { index, body: note.body };
    }).filter((note) => note.index >= 0);
    const options = {
      ...this.chartSize(),
      series,
      bands,
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] } },
      axes: [
        { values: (u, splits) => splits.map((i) => (Number.isInteger(i) ? tickLabel(labels[i], interval) : "")),
          stroke: "#5b6470", grid: { show: false } },
        { stroke: "#5b6470", grid: { stroke: "#e3e6ea" }, values: (u, splits) => splits.map((v) => formatMetric(metric, v)) },
      ],
      legend: { live: true },
      cursor: { points: { size: 6 } },
      hooks: {
        draw: [(u) => {
          const { ctx } = u;
          ctx.save();
          ctx.strokeStyle = "#b45309";
          ctx.fillStyle = "#b45309";
          ctx.lineWidth = 1.5 * uPlot.pxRatio;
          for (const note of notes) {
            const x = Math.round(u.valToPos(note.index, "x", true));
            ctx.beginPath();
            ctx.setLineDash([4 * uPlot.pxRatio, 3 * uPlot.pxRatio]);
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.setLineDash([]);
            ctx.beginPath();
            ctx.arc(x, u.bbox.top + 4 * uPlot.pxRatio, 4 * uPlot.pxRatio, 0, 2 * Math.PI);
            ctx.fill();
          }
          // anomalies: a ring around the point
          ctx.strokeStyle = "#c81e1e";
          ctx.lineWidth = 2 * uPlot.pxRatio;
          for (const marker of markers) {
            ctx.beginPath();
            ctx.arc(Math.round(u.valToPos(marker.index, "x", true)), Math.round(u.valToPos(marker.value, "y", true)),
              6 * uPlot.pxRatio, 0, 2 * Math.PI);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
    if (this.chart) this.chart.destroy();
    this.chartBox.replaceChildren();
    this.chart = new uPlot(options, values, this.chartBox);
    this.chartBox.dataset.points = String(labels.length);
    this.chartBox.dataset.annotations = String(notes.length);
    this.chartBox.dataset.anomalies = String(markers.length);
    this.chartBox.dataset.forecast = String(forecast.length);
    // A sum only where the metric adds up over time (not a rate, an average or a duration).
    const additive = ["visitors", "visits", "pageviews", "events", "total_revenue"].includes(metric);
    const total = data.series[metric].reduce((a, b) => a + b, 0);
    this.chartBox.setAttribute("aria-label",
      `${metricLabel} per ${interval}, ${labels.length} points` +
      (additive ? `, ${formatMetric(metric, total)} in total` : "") +
      (data.comparison ? ", with the previous period" : "") +
      (notes.length ? `, ${notes.length} annotation${notes.length > 1 ? "s" : ""}` : "") +
      (markers.length ? `, ${markers.length} anomal${markers.length > 1 ? "ies" : "y"}` : "") +
      (forecast.length ? `, forecast for ${forecast.length} ${interval}s` : ""));
  }

  // --- controls ------------------------------------------------------------------------------------------

  syncControls() {
    const params = this.params();
    const period = params.get("period") || this.defaultPeriod;
    $("#period").value = period;
    // The dates beside the picker are the served answer's: gone as soon as the URL asks for another range, so a
    // refused or failed load does not leave the previous range's dates there.
    const range = [period, params.get("from"), params.get("to")].join(",");
    if (range !== this.range) {
      $("#period-dates").textContent = "";
      this.range = range;
    }
    const custom = period === "custom";
    $("#custom-range").hidden = !custom;
    for (const id of ["from", "to"]) {
      const input = $(`#${id}`);
      input.disabled = !custom;
      if (custom) input.value = params.get(id) || input.value;
    }
    $("#compare").checked = params.get("compare") === "previous";
    $("#imports").checked = params.get("imports") !== "off";
    // All time has no previous period to compare with.
    $("#compare").disabled = period === "all";
    const metric = params.get("metric") || "visitors";
    for (const button of $$("[data-chart-metric]")) {
      button.setAttribute("aria-pressed", String(button.dataset.chartMetric === metric));
    }
  }

  applyForm() {
    const period = $("#period").value;
    const from = $("#from").value;
    const to = $("#to").value;
    if (period === "custom" && (!from || !to)) {
      this.setStatus("Choose both dates of the custom range.", true);
      (from ? $("#to") : $("#from")).focus();
      return;
    }
    if (period === "custom" && from > to) {
      this.setStatus("The custom range ends before it starts.", true);
      $("#to").focus();
      return;
    }
    this.navigate((params) => {
      params.set("period", period);
      params.delete("interval");
      if (period === "custom") { params.set("from", from); params.set("to", to); }
      else { params.delete("from"); params.delete("to"); }
      if ($("#compare").checked) params.set("compare", "previous"); else params.delete("compare");
      // Imported stats are on by default, as on Plausible's dashboard.
      if ($("#imports").checked) params.delete("imports"); else params.set("imports", "off");
    });
  }

  bind() {
    const form = $("#controls");
    form.addEventListener("submit", (event) => { event.preventDefault(); this.applyForm(); });
    $("#period").addEventListener("change", () => {
      if ($("#period").value === "custom") {
        $("#period-dates").textContent = "";
        $("#custom-range").hidden = false;
        for (const id of ["from", "to"]) $(`#${id}`).disabled = false;
        if (!$("#from").value || !$("#to").value) { $("#from").focus(); return; }
      }
      this.applyForm();
    });
    for (const id of ["from", "to"]) {
      $(`#${id}`).addEventListener("change", () => {
        if ($("#from").value && $("#to").value) this.applyForm();
      });
    }
    $("#compare").addEventListener("change", () => this.applyForm());
    $("#imports").addEventListener("change", () => this.applyForm());
    // The buttons are rebuilt with the tiles: one listener on their group.
    $("#chart-metrics").addEventListener("click", (event) => {
      const button = event.target.closest("[data-chart-metric]");
      if (button) this.navigate((p) => p.set("metric", button.dataset.chartMetric));
    });
    $("#interval").addEventListener("change", () => this.navigate((p) => p.set("interval", $("#interval").value)));
    $("#compare-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.compare();
    });
    $("#insights").addEventListener("change", () => {
      this.insights = null;
      if ($("#insights").checked) this.loadInsights(() => true);
      else if (this.overview) this.renderChart(this.overview);
    });
    $("#prop-key").addEventListener("change", () => {
      const chosen = $("#prop-key").value;
      this.getJSON("breakdown", { dimension: `props:${chosen}` })
        .then((data) => { if ($("#prop-key").value === chosen) this.renderRows($("#list-props"), data); })
        .catch((error) => $("#list-props").replaceChildren(el("p", { class: "error", text: error.message })));
    });
    for (const panel of $$(".dash-panel[data-panel]")) {
      const tabs = $$('[role="tab"]', panel);
      tabs.forEach((tab, i) => {
        tab.addEventListener("click", () => this.selectTab(panel, tab));
        tab.addEventListener("keydown", (event) => {
          const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
          if (event.key === "Home" || event.key === "End" || step) {
            event.preventDefault();
            const next = event.key === "Home" ? tabs[0] : event.key === "End" ? tabs[tabs.length - 1]
              : tabs[(i + step + tabs.length) % tabs.length];
            next.focus();
            this.selectTab(panel, next);
          }
        });
      });
    }
    window.addEventListener("popstate", () => this.load());
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => { if (this.chart) this.chart.setSize(this.chartSize()); }, 100);
    });
  }

  selectTab(panel, tab) {
    for (const other of $$('[role="tab"]', panel)) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
    }
    const list = $('[role="tabpanel"]', panel);
    list.setAttribute("aria-labelledby", tab.id);
    this.tabs[panel.dataset.panel] = tab.dataset.dimension;
    this.loadPanel(panel.dataset.panel).catch(() => {});
  }

  // --- live ----------------------------------------------------------------------------------------------

  showsToday() {
    return this.overview && this.overview.state.to >= todayIn(this.timezone);
  }

  onLiveEvent(message) {
    const feed = $("#live-feed");
    const empty = $("#live-empty");
    if (empty) empty.remove();
    const time = (message.at || "").slice(11, 19);
    feed.prepend(el("li", {}, el("time", { datetime: message.at || "", text: time }), " ",
      el("b", { text: message.name }), ` ${message.pathname}`));
    while (feed.children.length > 20) feed.lastElementChild.remove();
    if (typeof message.visitors === "number") $("#live-visitors").textContent = String(message.visitors);
    if (!this.showsToday()) return;
    const counter = $("#pageviews");
    if (message.name === "pageview" && counter && counter.dataset.count !== undefined && !this.params().has("f")) {
      counter.dataset.count = String(Number(counter.dataset.count) + 1);
      counter.textContent = formatMetric("pageviews", Number(counter.dataset.count));
    }
    this.scheduleRefresh();
  }

  scheduleRefresh() {
    // Answers are cached by the analytics service: refresh once they have expired, so the new events
    // are in, and at most once per burst of events.
    if (this.refreshTimer) return;
    const wait = Math.max(FIRST_DELAY, this.lastFetch + this.refreshAfter + 500 - Date.now());
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      this.load({ quiet: true });
    }, wait);
  }

  async loadRealtime() {
    try {
      const { visitors } = await this.getJSON("realtime");
      $("#live-visitors").textContent = String(visitors);
    } catch (error) {
      $("#live-visitors").textContent = "–";
    }
  }

  connect() {
    const holder = $("#live");
    if (!holder || !window.WebSocket) return;
    const status = $("#live-status");
    const url = `${location.protocol === "https:" ? "wss://" : "ws://"}${location.host}${holder.dataset.wsUrl}`;
    // Reconnect after any close (the realtime process restarted, its app host died and Nginx's other one
    // answers) with exponential backoff: 0.5 s doubling up to 15 s, each wait drawn between half and all
    // of it so that every dashboard left open does not come back in the same instant.
    // A path can also go silent without a close: the realtime process behind another app host's Nginx lost
    // power, and Nginx keeps this side open (proxy_read_timeout 1 h). So the page pings every `every` ms
    // (the server answers {"type":"pong"}); a socket from which nothing came for two of those, or that is not
    // open after two, is dropped and replaced. `data-live-check-ms` on #live overrides the 10 s.
    let delay = 500;
    const open = () => {
      const socket = new WebSocket(url);
      const every = Number(holder.dataset.liveCheckMs) || 10000;
      let heard = Date.now();
      let done = false;
      let timer = null;
      const retry = () => {
        if (done) return;
        done = true;
        clearInterval(timer);
        status.textContent = "reconnecting…";
        setTimeout(open, delay / 2 + Math.random() * (delay / 2));
        delay = Math.min(delay * 2, 15000);
      };
      timer = setInterval(() => {
        if (Date.now() - heard > 2 * every) {
          socket.close();
          retry();
        } else if (socket.readyState === WebSocket.OPEN) {
          socket.send('{"type":"ping"}');
        }
      }, every);
      socket.addEventListener("open", () => {
        heard = Date.now();
        delay = 500;
        status.textContent = "connected";
        holder.dataset.connections = String(Number(holder.dataset.connections || 0) + 1);
      });
      socket.addEventListener("message", (event) => {
        heard = Date.now();
        let message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        if (message.type === "ping") socket.send('{"type":"pong"}');
        else if (message.type === "event") this.onLiveEvent(message);
      });
      socket.addEventListener("close", retry);
    };
    open();
  }

  start() {
    this.bind();
    this.load({ useEmbedded: true });
    this.loadRealtime();
    setInterval(() => this.loadRealtime(), 60000);
    this.connect();
  }
}

const root = document.getElementById("dashboard");
if (root) new Dashboard(root).start();
