// Operator views (admins): usage and cost by user and model with a chart, budgets against
// limits, the semantic cache (hit rate, clear), region health and breakers, the audit log.
// Each panel reads one JSON API and fails on its own, with the API's own explanation.

import { api } from "./api.js";
import { clear, confirmDialog, formatTime, formatUsd, h, showError } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const AUDIT_ACTIONS = [
  "auth_failure", "permission_denied", "upload", "delete", "admin_action", "budget_override",
  "injection_blocked", "injection_flagged", "document_flagged", "answer_neutralised",
];
const AUDIT_OUTCOMES = ["success", "failure", "denied", "blocked"];

export function renderOperations(main, me) {
  if (!me.permissions.includes("usage:read-all")) {
    main.append(h("section", { class: "card" }, h("h1", {}, "Operations"),
      h("p", { class: "denied" }, `The operator views need the admin role (usage:read-all). Your roles: ${me.roles.join(", ") || "none"}.`)));
    return null;
  }
  const panels = {
    usage: h("section", { class: "card", "aria-labelledby": "usage-title" }),
    budgets: h("section", { class: "card", "aria-labelledby": "budgets-title" }),
    cache: h("section", { class: "card", "aria-labelledby": "cache-title" }),
    regions: h("section", { class: "card", "aria-labelledby": "regions-title" }),
    audit: h("section", { class: "card wide", "aria-labelledby": "audit-title" }),
  };
  main.append(h("h1", {}, `Operations · ${me.tenant}`), h("div", { class: "ops-grid" }, Object.values(panels)));
  usagePanel(panels.usage, me);
  budgetsPanel(panels.budgets);
  cachePanel(panels.cache, me);
  regionsPanel(panels.regions);
  auditPanel(panels.audit);
  return null;
}

async function load(panel, title, path, render) {
  const loading = h("p", { class: "muted" }, "Loading…");
  clear(panel).append(h("h2", { id: panel.getAttribute("aria-labelledby") }, title), loading);
  try {
    const body = await api(path);
    loading.remove();
    render(body);
  } catch (error) {
    loading.replaceWith(h("p", { class: "denied" }, error.detail));
  }
}

function usagePanel(panel, me) {
  const month = new Date().toISOString().slice(0, 7);
  load(panel, `Usage and cost · ${month}`, `/api/usage?month=${month}`, (totals) => {
    const total = totals.total;
    panel.append(h("p", {},
      `${total.requests} requests · ${total.prompt_tokens + total.completion_tokens} tokens · ` +
      `${formatUsd(total.cost_usd)} · ${total.cached} from the cache`));
    if (!total.requests) {
      panel.append(h("p", { class: "muted" }, "No chat requests this month yet."));
      return;
    }
    panel.append(
      h("h3", {}, "Cost by user"), barChart(totals.by_user, "Cost by user"), amountTable(totals.by_user, "User"),
      h("h3", {}, "Cost by model"), barChart(totals.by_model, "Cost by model"), amountTable(totals.by_model, "Model"),
    );
  });
}

// A horizontal bar chart (SVG) of cost, with the request count when there is no cost
// (the offline answerer is free); the table beside it carries the same numbers as text.
function barChart(amounts, label) {
  const rows = Object.entries(amounts).sort((a, b) => b[1].cost_usd - a[1].cost_usd || b[1].requests - a[1].requests);
  const useCost = rows.some(([, amount]) => amount.cost_usd > 0);
  const value = (amount) => (useCost ? amount.cost_usd : amount.requests);
  const largest = Math.max(...rows.map(([, amount]) => value(amount)), 1e-9);
  const rowHeight = 26;
  const width = 520;
  const labelWidth = 150;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${rows.length * rowHeight + 4}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label} (${useCost ? "USD" : "requests"}): ` +
    rows.map(([name, amount]) => `${name} ${useCost ? formatUsd(amount.cost_usd) : amount.requests}`).join(", "));
  rows.forEach(([name, amount], index) => {
    const y = index * rowHeight + 2;
    const barWidth = Math.max(2, (width - labelWidth - 90) * (value(amount) / largest));
    svg.append(
      svgElement("text", { x: 0, y: y + 17, class: "chart-label" }, name.length > 22 ? name.slice(0, 21) + "…" : name),
      svgElement("rect", { x: labelWidth, y: y + 4, width: barWidth, height: rowHeight - 8, rx: 3, class: "chart-bar" }),
      svgElement("text", { x: labelWidth + barWidth + 6, y: y + 17, class: "chart-value" },
        useCost ? formatUsd(amount.cost_usd) : `${amount.requests} req`),
    );
  });
  return svg;
}

function svgElement(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function amountTable(amounts, what) {
  return h("div", { class: "table-wrap" }, h("table", { class: "compact" },
    h("thead", {}, h("tr", {}, [what, "Requests", "Prompt tokens", "Completion tokens", "Cached", "Cost"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, Object.entries(amounts).map(([name, amount]) => h("tr", {},
      h("th", { scope: "row" }, name), h("td", {}, amount.requests), h("td", {}, amount.prompt_tokens),
      h("td", {}, amount.completion_tokens), h("td", {}, amount.cached), h("td", {}, formatUsd(amount.cost_usd)))))));
}

function budgetsPanel(panel) {
  load(panel, "Budgets", "/api/budgets", (report) => {
    if (!report.enabled) panel.append(h("p", { class: "muted" }, "No budgets are set (BUDGETS): spend is tracked, nothing is limited."));
    panel.append(h("div", { class: "table-wrap" }, h("table", { class: "compact" },
      h("thead", {}, h("tr", {}, ["Scope", "Period", "Spent", "Limit", "Used"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, report.budgets.map((line) => h("tr", {},
        h("th", { scope: "row" }, line.kind === "tenant" ? "tenant" : line.user),
        h("td", {}, `${line.period} ${line.period_key}`),
        h("td", {}, formatUsd(line.spent_usd + line.reserved_usd)),
        h("td", {}, line.limit_usd === null ? "none" : formatUsd(line.limit_usd)),
        h("td", {}, line.utilisation === null ? "—" : h("span", { class: "meter" },
          h("meter", { min: 0, max: 1, low: line.soft_limit_usd / line.limit_usd || 0.8, high: 0.999, optimum: 0,
            value: Math.min(line.utilisation, 1), "aria-label": `${line.scope} ${line.period}` }),
          ` ${Math.round(line.utilisation * 100)}%`))))))));
  });
}

function cachePanel(panel, me, note) {
  load(panel, "Semantic cache", "/api/cache/stats", (stats) => {
    if (note) panel.append(h("p", { role: "status" }, note));
    if (stats.enabled === false) {
      panel.append(h("p", { class: "muted" }, "The cache is off (CACHE_ENABLED=false)."));
      return;
    }
    const overall = stats.overall;
    panel.append(
      h("p", { class: "big-number" }, `${Math.round(overall.hit_rate * 100)}%`, h("span", { class: "muted small" }, " hit rate (this instance)")),
      h("p", {}, `${overall.hits} hits (${overall.exact_hits} exact, ${overall.semantic_hits} semantic) · ${overall.misses} misses · ` +
        `${overall.size} answers stored in ${overall.partitions} partitions`),
      h("button", {
        type: "button", class: "danger", onclick: async () => {
          if (!(await confirmDialog(`Clear every cached answer of tenant ${me.tenant}? Questions will be answered afresh (and cost again).`, "Clear cache"))) return;
          try {
            const { deleted } = await api("/api/cache", { method: "DELETE" });
            cachePanel(panel, me, `Cleared ${deleted} cached answers.`);
          } catch (error) {
            showError(error, "Clearing the cache");
          }
        },
      }, "Clear cache"));
  });
}

function regionsPanel(panel) {
  load(panel, "LLM regions", "/api/regions", ({ regions }) => {
    if (!regions.length) {
      panel.append(h("p", { class: "muted" }, "No regions are configured (LLM_REGIONS): answers come from the offline extractive answerer."));
      return;
    }
    panel.append(h("div", { class: "table-wrap" }, h("table", { class: "compact" },
      h("thead", {}, h("tr", {}, ["Region", "Model", "Breaker", "Latency (median)", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, regions.map((region) => h("tr", {},
        h("th", { scope: "row" }, region.name),
        h("td", {}, `${region.model} (${region.tiers.join(", ")})`),
        h("td", {}, h("span", { class: `breaker breaker-${region.breaker}` }, region.breaker),
          region.open_until ? ` until ${formatTime(new Date(region.open_until * 1000).toISOString())}` : ""),
        h("td", {}, region.latency_ms.median === null ? "—" : `${Math.round(region.latency_ms.median)} ms`),
        h("td", {}, region.reason || "")))))));
  });
}

function auditPanel(panel) {
  const form = h("form", { class: "filters" },
    h("label", {}, "Action ", h("select", { name: "action" }, h("option", { value: "" }, "any"), AUDIT_ACTIONS.map((a) => h("option", { value: a }, a)))),
    h("label", {}, "Outcome ", h("select", { name: "outcome" }, h("option", { value: "" }, "any"), AUDIT_OUTCOMES.map((o) => h("option", { value: o }, o)))),
    h("label", {}, "Actor ", h("input", { name: "actor", size: 12 })),
    h("label", {}, "Since ", h("input", { name: "since", type: "date" })),
    h("label", {}, "Until ", h("input", { name: "until", type: "date" })),
    h("button", { type: "submit" }, "Filter"));
  const results = h("div");
  form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
  clear(panel).append(h("h2", { id: "audit-title" }, "Audit log"), form, results);

  async function search() {
    const data = new FormData(form);
    const query = new URLSearchParams({ limit: "50" });
    for (const [name, value] of data.entries()) if (value) query.set(name, value);
    if (query.get("until")) query.set("until", `${query.get("until")}T23:59:59.999`);  // the whole day
    clear(results).append(h("p", { class: "muted" }, "Loading…"));
    try {
      const { records } = await api(`/api/audit?${query}`);
      clear(results).append(records.length ? h("div", { class: "table-wrap" }, h("table", { class: "compact audit" },
        h("thead", {}, h("tr", {}, ["Time", "Action", "Actor", "Outcome", "Target", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, records.map((record) => h("tr", {},
          h("td", {}, formatTime(record.time)), h("td", {}, record.action), h("td", {}, record.actor),
          h("td", {}, h("span", { class: `outcome outcome-${record.outcome}` }, record.outcome)),
          h("td", { class: "clip" }, record.target), h("td", { class: "clip" }, record.reason))))))
        : h("p", { class: "muted" }, "No audit records match."));
    } catch (error) {
      clear(results).append(h("p", { class: "denied" }, error.detail));
    }
  }
  search();
}
