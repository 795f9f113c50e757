// The imptrack dashboard: every figure comes from the stats API (/api/v1/stats, read
// with the session cookie the login form set) or from /dashboard/pipeline, and is
// shown as the API gives it; charts are plotly.js, served by the exporter.
"use strict";

const HOURS = 48;
const HOUR_MS = 3600 * 1000;
const TOP = 10;
const state = { loads: 0, timer: null, busy: false, again: false };

// -- Formats -------------------------------------------------------------------
// Money arrives as DECIMAL(18, 4) numbers: summed as whole ten-thousandths, so a
// sum of many hours is exact, and shown to the cent, halves rounded up.

const units = (value) => Math.round(Number(value || 0) * 10000);
const cents = (u) => (Math.round(u / 100) / 100).toLocaleString("en-US", {
  minimumFractionDigits: 2, maximumFractionDigits: 2,
});
const whole = (value) => Number(value || 0).toLocaleString("en-US");
const FORMATS = {
  int: whole,
  money: (value) => cents(units(value)),
  pct: (value) => (value === null || value === undefined ? "–" : `${Number(value).toFixed(2)} %`),
  ms: (value) => (value === null || value === undefined ? "–" : `${Number(value).toFixed(1)} ms`),
  text: (value) => (value === null || value === undefined || value === "" ? "–" : String(value)),
};

// -- Time ----------------------------------------------------------------------

function localParts(ms, tz) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(ms));
  const get = (type) => parts.find((p) => p.type === type).value;
  return { date: `${get("year")}-${get("month")}-${get("day")}`, hour: get("hour") };
}

// The local hours (as the API names them: 2026-12-04T13:00:00) of the last 48
// hours' instants in `tz`, oldest first; an hour a clock change repeats is one.
function lastHours(tz, now) {
  const labels = [];
  for (let i = HOURS - 1; i >= 0; i -= 1) {
    const { date, hour } = localParts(now - i * HOUR_MS, tz);
    const label = `${date}T${hour}:00:00`;
    if (!labels.includes(label)) labels.push(label);
  }
  return labels;
}

function daysBefore(isoDate, days) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d) - days * 24 * HOUR_MS).toISOString().slice(0, 10);
}

// -- Reading -------------------------------------------------------------------

class ApiError extends Error {}

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) {
    window.location.assign("/dashboard/login");
    throw new ApiError("the session ended; log in again");
  }
  let body;
  try {
    body = await response.json();
  } catch (error) {
    throw new ApiError(`${url} answered ${response.status}, not JSON`);
  }
  if (!response.ok) throw new ApiError(`${url}: ${body.error || response.status}`);
  return body;
}

function slice(name, params) {
  const query = new URLSearchParams(params);
  return getJson(`/api/v1/stats/${name}?${query}`);
}

// -- Drawing -------------------------------------------------------------------

function element(tag, attributes = {}, text = null) {
  const made = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) made.setAttribute(key, value);
  if (text !== null) made.textContent = text;
  return made;
}

// columns: [key, heading, format]; each cell keeps its column's key, for tests and
// for people reading the page's source.
function fillTable(id, columns, rows, empty) {
  const table = document.getElementById(id);
  table.replaceChildren();
  const head = element("tr");
  for (const [key, heading, format] of columns) {
    const cls = format === "text" ? "" : "num";
    head.append(element("th", { "data-column": key, class: cls }, heading));
  }
  const thead = element("thead");
  thead.append(head);
  table.append(thead);
  const body = element("tbody");
  table.append(body);
  if (!rows.length) {
    const row = element("tr", { class: "empty" });
    row.append(element("td", { colspan: String(columns.length) }, empty));
    body.append(row);
    return;
  }
  for (const data of rows) {
    const row = element("tr");
    for (const [key, , format] of columns) {
      const cls = format === "text" ? (key === "last_error" ? "wrap" : "") : "num";
      row.append(element("td", { "data-column": key, class: cls }, FORMATS[format](data[key])));
    }
    body.append(row);
  }
}

const CHART_LAYOUT = {
  margin: { l: 50, r: 50, t: 10, b: 40 },
  legend: { orientation: "h", y: -0.2 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
};
const CHART_CONFIG = { displayModeBar: false, responsive: true };

// An axis of counts: whole-number ticks from 0, at most about five of them.
function countAxis(title, values, extra = {}) {
  const top = Math.max(1, ...values);
  return { title: { text: title }, rangemode: "tozero", tick0: 0, dtick: Math.max(1, Math.ceil(top / 5)), ...extra };
}

function chart(id, traces, layout = {}) {
  window.Plotly.react(id, traces, { ...CHART_LAYOUT, ...layout }, CHART_CONFIG);
}

// -- The panels ----------------------------------------------------------------

function showHours(labels, rows) {
  const inWindow = new Set(labels);
  const byHour = new Map(labels.map((h) => [h, { impressions: 0, clicks: 0, conversions: 0 }]));
  const money = new Map(); // currency -> { revenue, payout, profit } in units, and by hour
  for (const row of rows) {
    if (!inWindow.has(row.hour)) continue;
    const hour = byHour.get(row.hour);
    for (const key of ["impressions", "clicks", "conversions"]) hour[key] += Number(row[key]);
    if (!money.has(row.currency)) {
      money.set(row.currency, { revenue: 0, payout: 0, profit: 0, hours: new Map() });
    }
    const currency = money.get(row.currency);
    const hourly = currency.hours.get(row.hour) || { revenue: 0, payout: 0, profit: 0 };
    for (const key of ["revenue", "payout", "profit"]) {
      currency[key] += units(row[key]);
      hourly[key] += units(row[key]);
    }
    currency.hours.set(row.hour, hourly);
  }
  const totals = { impressions: 0, clicks: 0, conversions: 0 };
  for (const hour of byHour.values()) for (const key in totals) totals[key] += hour[key];
  for (const key in totals) {
    const value = document.querySelector(`.tile[data-metric="${key}"] .value`);
    value.textContent = whole(totals[key]);
  }
  const currencies = [...money.keys()].sort();
  for (const key of ["revenue", "payout", "profit"]) {
    const value = document.querySelector(`.tile[data-metric="${key}"] .value`);
    value.replaceChildren();
    if (!currencies.length) value.append(element("span", { "data-currency": "" }, "0.00"));
    for (const currency of currencies) {
      const shown = `${cents(money.get(currency)[key])} ${currency}`;
      value.append(element("span", { "data-currency": currency }, shown));
    }
  }
  const x = labels.map((h) => h.replace("T", " ").slice(0, 16));
  const series = (key) => labels.map((h) => byHour.get(h)[key]);
  chart("chart-traffic", [
    { x, y: series("impressions"), name: "impressions", type: "bar", marker: { color: "#9db8d9" } },
    { x, y: series("clicks"), name: "clicks", type: "scatter", mode: "lines", yaxis: "y2" },
    { x, y: series("conversions"), name: "conversions", type: "scatter", mode: "lines", yaxis: "y2" },
  ], { yaxis: countAxis("impressions", series("impressions")),
    yaxis2: countAxis("clicks, conversions", [...series("clicks"), ...series("conversions")],
      { overlaying: "y", side: "right" }) });
  const moneyTraces = [];
  for (const currency of currencies) {
    const hours = money.get(currency).hours;
    for (const key of ["revenue", "payout", "profit"]) {
      moneyTraces.push({
        x, name: `${key} ${currency}`, type: "scatter", mode: "lines",
        y: labels.map((h) => ((hours.get(h) || {})[key] || 0) / 10000),
      });
    }
  }
  chart("chart-money", moneyTraces, { yaxis: { title: { text: "money per hour" } } });
}

const MONEY_COLUMNS = [
  ["currency", "Currency", "text"],
  ["impressions", "Impressions", "int"],
  ["clicks", "Clicks", "int"],
  ["conversions", "Conversions", "int"],
  ["revenue", "Revenue", "money"],
  ["payout", "Payout", "money"],
  ["profit", "Profit", "money"],
];

function showRejections(rows) {
  fillTable("rejections", [
    ["reason", "Reason", "text"],
    ["rejections", "Rejections", "int"],
    ["impressions", "Impressions", "int"],
    ["clicks", "Clicks", "int"],
    ["share_pct", "Share", "pct"],
  ], rows, "nothing rejected");
  chart("chart-rejections", [{
    type: "bar", orientation: "h",
    y: rows.map((r) => r.reason), x: rows.map((r) => r.rejections), marker: { color: "#d98c7a" },
  }], { margin: { l: 160, r: 20, t: 10, b: 30 }, yaxis: { autorange: "reversed" } });
}

const OUTCOMES = ["delivered", "retrying", "failed", "dead_letter", "blocked"];
const OUTCOME_COLOURS = {
  delivered: "#3a8f5c", retrying: "#e0a030", failed: "#c8503c", dead_letter: "#7a1f14", blocked: "#8a94a3",
};

function showDeliveries(rows) {
  fillTable("deliveries", [
    ["offer_id", "Offer", "text"],
    ["destination", "Destination", "text"],
    ["impressions", "Impressions", "int"],
    ...OUTCOMES.map((o) => [o, o.replace("_", " "), "int"]),
    ["delivered_pct", "Delivered", "pct"],
    ["p95_ms", "p95", "ms"],
  ], rows, "nothing to deliver");
  const byDestination = new Map();
  for (const row of rows) {
    const counts = byDestination.get(row.destination) || Object.fromEntries(OUTCOMES.map((o) => [o, 0]));
    for (const outcome of OUTCOMES) counts[outcome] += Number(row[outcome]);
    byDestination.set(row.destination, counts);
  }
  const destinations = [...byDestination.keys()];
  chart("chart-deliveries", OUTCOMES.map((outcome) => ({
    type: "bar", name: outcome.replace("_", " "), x: destinations, marker: { color: OUTCOME_COLOURS[outcome] },
    y: destinations.map((d) => byDestination.get(d)[outcome]),
  })), { barmode: "stack", xaxis: { showticklabels: destinations.length <= 6 } });
}

function showPipeline(pipeline) {
  fillTable("processes", [
    ["name", "Process", "text"],
    ["state", "State", "text"],
    ["pid", "Pid", "text"],
    ["memory", "Memory", "text"],
    ["health", "Health", "text"],
  ], pipeline.processes.map((p) => ({
    ...p,
    state: p.up ? "up" : "down",
    memory: p.rss_bytes === null ? null : `${Math.round(p.rss_bytes / 2 ** 20)} MiB`,
  })), "no process");
  fillTable("lag", [
    ["group", "Consumer group", "text"],
    ["records", "Records behind", "int"],
    ["trend", "Trend", "text"],
  ], Object.entries(pipeline.lag).map(([group, lag]) => ({ group, ...lag })),
  "no group has committed offsets yet");
  fillTable("rates", [
    ["name", "Per second", "text"],
    ["rate", "Rate", "text"],
  ], Object.entries(pipeline.rates_per_second).map(([name, rate]) => ({
    name, rate: rate === null ? null : rate.toFixed(1),
  })), "no rates yet");
  const breakers = pipeline.open_breakers;
  document.getElementById("open-breakers").textContent = breakers === null ? "– (no forwarder answered)" : String(breakers);
  const over = pipeline.rates_over_seconds;
  document.getElementById("pipeline-period").textContent = over === null ? "" : `(rates over ${Math.round(over)} s)`;
  const x = pipeline.series.map((p) => p.at);
  const traces = Object.keys(pipeline.rates_per_second).map((name) => ({
    x, y: pipeline.series.map((p) => p.rates_per_second[name]), name: `${name}/s`,
    type: "scatter", mode: "lines+markers",
  }));
  const groups = Object.keys(pipeline.lag);
  for (const group of groups) {
    traces.push({
      x, y: pipeline.series.map((p) => p.lag[group] ?? null), name: `lag ${group}`,
      type: "scatter", mode: "lines", yaxis: "y2", line: { dash: "dot" },
    });
  }
  // The last ten minutes, however few readings there are yet.
  const now = Date.now();
  chart("chart-throughput", traces, {
    xaxis: { type: "date", range: [new Date(now - 600 * 1000).toISOString(), new Date(now).toISOString()] },
    yaxis: { title: { text: "per second" }, rangemode: "tozero" },
    yaxis2: { title: { text: "records behind" }, overlaying: "y", side: "right", rangemode: "tozero" },
  });
}

// -- The page ------------------------------------------------------------------

async function load() {
  if (state.busy) {
    state.again = true; // a choice made meanwhile: read again with it when this ends
    return;
  }
  state.busy = true;
  state.again = false;
  const tz = document.getElementById("tz").value;
  const days = Number(document.getElementById("days").value);
  const labels = lastHours(tz, Date.now());
  const last = labels[labels.length - 1].slice(0, 10);
  const first = labels[0].slice(0, 10);
  const since = daysBefore(last, days - 1);
  const hoursSection = document.getElementById("hours");
  hoursSection.dataset.firstHour = labels[0];
  hoursSection.dataset.lastHour = labels[labels.length - 1];
  document.getElementById("hours-period").textContent =
    `(${labels[0].replace("T", " ").slice(0, 16)} to ${labels[labels.length - 1].replace("T", " ").slice(0, 13)}:59, ${tz})`;
  for (const span of document.querySelectorAll(".days-period")) {
    span.textContent = since === last ? `(${last}, ${tz})` : `(${since} to ${last}, ${tz})`;
    span.dataset.from = since;
    span.dataset.to = last;
  }
  const period = { from: since, to: last, tz };
  try {
    const [hours, offers, affiliates, rejections, deliveries, errors, pipeline] = await Promise.all([
      slice("custom", { group_by: "hour", from: first, to: last, tz }),
      slice("offers", { ...period, sort: "impressions:desc", limit: TOP }),
      slice("affiliates", { ...period, sort: "impressions:desc", limit: TOP }),
      slice("rejections", period),
      slice("deliveries", { ...period, sort: "impressions:desc", limit: 20 }),
      slice("postback-errors", period),
      getJson("/dashboard/pipeline"),
    ]);
    showHours(labels, hours.rows);
    fillTable("top-offers", [["offer_id", "Offer", "text"], ["advertiser_id", "Advertiser", "text"],
      ...MONEY_COLUMNS], offers.rows, "no traffic");
    fillTable("top-affiliates", [["pid", "Affiliate", "text"], ...MONEY_COLUMNS],
      affiliates.rows, "no traffic");
    showRejections(rejections.rows);
    showDeliveries(deliveries.rows);
    fillTable("postback-errors", [
      ["error_kind", "Kind", "text"],
      ["refusals", "Refused", "int"],
      ["share_pct", "Share", "pct"],
      ["offers", "Offers", "int"],
      ["last_received", "Last", "text"],
      ["last_error", "Last error", "text"],
    ], errors.rows, "no postback refused");
    showPipeline(pipeline);
    document.getElementById("problem").hidden = true;
    document.getElementById("problem").textContent = "";
    state.loads += 1;
    document.body.dataset.loads = String(state.loads);
    document.body.dataset.state = "ready";
    const now = localParts(Date.now(), tz);
    document.getElementById("updated").textContent =
      `updated ${new Date().toLocaleTimeString("en-GB", { timeZone: tz })} (${now.date}, ${tz})`;
  } catch (error) {
    const problem = document.getElementById("problem");
    problem.textContent = `Could not refresh: ${error.message}`;
    problem.hidden = false;
    document.body.dataset.state = "error";
  } finally {
    state.busy = false;
    if (state.again) load();
    else schedule();
  }
}

function schedule() {
  clearTimeout(state.timer);
  const seconds = Number(document.getElementById("refresh").value);
  if (seconds > 0) state.timer = setTimeout(load, seconds * 1000);
}

async function setUp() {
  const picker = document.getElementById("tz");
  // The zones the stats API knows (the browser's own list names some differently:
  // Chromium's Asia/Calcutta is Asia/Kolkata).
  const zones = await getJson("/dashboard/zones").catch(() => ["UTC"]);
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const saved = localStorage.getItem("imptrack.tz");
  const chosen = [saved, own].find((zone) => zones.includes(zone)) || "UTC";
  for (const zone of zones) picker.append(element("option", { value: zone }, zone));
  picker.value = chosen;
  for (const [id, key] of [["days", "imptrack.days"], ["refresh", "imptrack.refresh"]]) {
    const saved = localStorage.getItem(key);
    if (saved !== null) document.getElementById(id).value = saved;
  }
  for (const [id, key] of [["tz", "imptrack.tz"], ["days", "imptrack.days"], ["refresh", "imptrack.refresh"]]) {
    document.getElementById(id).addEventListener("change", (event) => {
      localStorage.setItem(key, event.target.value);
      if (id === "refresh") schedule();
      else load();
    });
  }
  load();
}

document.addEventListener("DOMContentLoaded", setUp);
