// egressd dashboard: read-only views over the admin API. No framework, no
// external fetch; every value from the API reaches the DOM as text.
"use strict";
(function () {
  const MAX_ROWS = 500;   // rows kept in the DOM
  const MAX_KEEP = 5000;  // decisions remembered for the "of M" note
  const BACKLOG = 500;    // stored decisions asked for on (re)connect
  const POLL_MS = 5000;
  const FILTERS = ["since", "verdict", "layer", "reason", "source", "host"];
  const DEFAULTS = { since: "1h", view: "decisions" };
  const VIEWS = ["decisions", "chains", "suggestions", "allowlist"];

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // el builds an element: el("td", {class: "x", title: "t"}, child, "text", ...).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") e.className = v;
        else if (k === "dataset") Object.assign(e.dataset, v);
        else e.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const svg = (tag, attrs) => {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  };
  const fmtN = (n) => Number(n || 0).toLocaleString("en-US");
  const pad = (n) => String(n).padStart(2, "0");
  const hms = (t) => `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
  const hm = (t) => `${pad(t.getHours())}:${pad(t.getMinutes())}`;
  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }
  const short = (v) => (v && v.length > 12 ? v.slice(0, 12) : v || "–");

  // ---- state, from and to the URL ----------------------------------------

  const state = { view: DEFAULTS.view, f: {} };
  function readURL() {
    const q = new URLSearchParams(location.search);
    state.view = VIEWS.includes(q.get("view")) ? q.get("view") : DEFAULTS.view;
    for (const k of FILTERS) state.f[k] = q.has(k) ? q.get(k) : (DEFAULTS[k] || "");
  }
  function writeURL() {
    const q = new URLSearchParams();
    if (state.view !== DEFAULTS.view) q.set("view", state.view);
    for (const k of FILTERS) {
      const v = state.f[k] || "";
      if (v !== (DEFAULTS[k] || "")) q.set(k, v);
    }
    const s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }
  // apiQuery is the filters as decision API parameters.
  function apiQuery(extra) {
    const q = new URLSearchParams();
    for (const k of FILTERS) if (state.f[k]) q.set(k, state.f[k]);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return q;
  }

  async function getJSON(path) {
    const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" });
    const body = await r.text();
    if (!r.ok) throw new Error(body.trim() || `${r.status} ${r.statusText}`);
    return JSON.parse(body);
  }
  async function getText(path) {
    const r = await fetch(path, { cache: "no-store", credentials: "same-origin" });
    const body = await r.text();
    if (!r.ok) throw new Error(body.trim() || `${r.status} ${r.statusText}`);
    return body;
  }

  // ---- filters -------------------------------------------------------------

  const form = $("#filters");
  function showFilters() {
    for (const k of FILTERS) {
      const input = form.elements[k];
      let v = state.f[k] || "";
      if (input.tagName === "SELECT" && v && !$$("option", input).some((o) => o.value === v)) {
        input.append(el("option", { value: v }, v)); // a shared URL with a value of its own
      }
      input.value = v;
      input.classList.toggle("set", v !== "" && v !== (DEFAULTS[k] || ""));
    }
  }
  function setFilter(k, v) {
    state.f[k] = v;
    showFilters();
    filtersChanged();
  }
  function filtersChanged() {
    writeURL();
    restartStream();
    refreshAll();
  }
  let typing;
  form.addEventListener("input", (ev) => {
    const t = ev.target;
    if (!FILTERS.includes(t.name)) return;
    clearTimeout(typing);
    const apply = () => { state.f[t.name] = t.value.trim(); showFilters(); filtersChanged(); };
    if (t.tagName === "SELECT") apply();
    else typing = setTimeout(apply, 400);
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearTimeout(typing);
    for (const k of FILTERS) state.f[k] = form.elements[k].value.trim();
    showFilters();
    filtersChanged();
  });
  $("#clear").addEventListener("click", () => {
    for (const k of FILTERS) state.f[k] = DEFAULTS[k] || "";
    showFilters();
    filtersChanged();
  });
  function filterError(msg) {
    const p = $("#filter-error");
    p.textContent = msg || "";
    p.hidden = !msg;
  }

  // ---- tabs ----------------------------------------------------------------

  function showView() {
    for (const b of $$(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.view === state.view));
    for (const v of VIEWS) $("#view-" + v).hidden = v !== state.view;
    // The allowlist has no decision filters.
    form.hidden = state.view === "allowlist";
  }
  for (const b of $$(".tabs button")) {
    b.addEventListener("click", () => {
      state.view = b.dataset.view;
      writeURL();
      showView();
      refreshView();
    });
  }

  // ---- the live decision table ---------------------------------------------

  const tbody = $("#decisions tbody");
  const live = { es: null, lastID: 0, pending: [], kept: [], received: 0, paused: false, frame: 0, retry: 0, dropped: 0, gen: 0 };

  function setLive(cls, text) {
    const d = $("#live");
    d.className = "live-dot " + cls;
    d.textContent = text;
  }

  function restartStream() {
    if (live.es) live.es.close();
    live.es = null;
    clearTimeout(live.retry);
    live.gen++;
    live.lastID = 0;
    live.pending = [];
    live.kept = [];
    live.received = 0;
    live.dropped = 0;
    tbody.replaceChildren();
    renderShowing();
    connect();
  }

  function connect() {
    const gen = live.gen;
    const q = apiQuery({ backlog: String(BACKLOG) });
    if (live.lastID) q.set("after_id", String(live.lastID));
    setLive("", "connecting");
    const es = new EventSource("/api/v1/decisions/stream?" + q.toString());
    live.es = es;
    es.onopen = () => { if (gen === live.gen) setLive(live.paused ? "paused" : "on", live.paused ? "paused" : "live"); };
    es.addEventListener("decision", (ev) => {
      if (gen !== live.gen) return;
      let d;
      try { d = JSON.parse(ev.data); } catch (_) { return; }
      if (d.id <= live.lastID) return;
      live.lastID = d.id;
      live.pending.push(d);
      live.received++;
      if (live.pending.length > MAX_KEEP) live.pending.splice(0, live.pending.length - MAX_KEEP);
      schedule();
    });
    es.addEventListener("dropped", (ev) => {
      try { live.dropped += JSON.parse(ev.data).dropped || 0; } catch (_) { /* ignore */ }
      schedule();
    });
    es.onerror = () => {
      if (gen !== live.gen) return;
      // Reconnect ourselves, after the last decision seen: the browser's
      // own retry would ask for the whole backlog again.
      es.close();
      setLive("off", "reconnecting");
      live.retry = setTimeout(() => { if (gen === live.gen) connect(); }, 2000);
      // A bad filter makes the stream fail at once; the API says why.
      getText("/api/v1/decisions?" + apiQuery({ limit: "1" }).toString())
        .then(() => filterError(""), (e) => filterError(e.message));
    };
  }

  function schedule() {
    if (!live.frame && !live.paused) live.frame = requestAnimationFrame(flush);
    if (live.paused) renderShowing();
  }

  // flush renders what arrived since the last frame: one DOM insertion per
  // frame, the table cut to MAX_ROWS.
  function flush() {
    live.frame = 0;
    if (live.paused || live.pending.length === 0) { renderShowing(); return; }
    let batch = live.pending;
    live.pending = [];
    live.kept.push(...batch);
    if (live.kept.length > MAX_KEEP) live.kept.splice(0, live.kept.length - MAX_KEEP);
    if (batch.length > MAX_ROWS) batch = batch.slice(batch.length - MAX_ROWS);
    const frag = document.createDocumentFragment();
    const fresh = tbody.childElementCount > 0 && batch.length <= 3;
    for (let i = batch.length - 1; i >= 0; i--) frag.append(row(batch[i], fresh));
    tbody.prepend(frag);
    let extra = tbody.childElementCount - MAX_ROWS;
    while (extra-- > 0) tbody.lastElementChild.remove();
    renderShowing();
    bumpOverview();
  }

  function renderShowing() {
    const shown = tbody.childElementCount;
    const total = live.kept.length;
    let s = total === 0 ? "No decisions yet" :
      shown < total ? `Showing the newest ${fmtN(shown)} of ${fmtN(total)} decisions` : `Showing ${fmtN(shown)} decision${shown === 1 ? "" : "s"}`;
    if (live.paused && live.pending.length) s += ` · paused, ${fmtN(live.pending.length)} new`;
    if (live.dropped) s += ` · ${fmtN(live.dropped)} missed (the stream fell behind)`;
    $("#showing").textContent = s;
    $("#empty").hidden = shown > 0;
    $("#n-decisions").textContent = total ? fmtN(total) : "";
    const btn = $("#pause");
    btn.textContent = live.paused ? (live.pending.length ? `Resume (${fmtN(live.pending.length)})` : "Resume") : "Pause";
  }

  function row(d, fresh) {
    const t = new Date(d.time);
    const cls = [d.verdict, fresh ? "fresh" : ""].join(" ").trim();
    const host = d.host || d.destination || "";
    const hostCell = el("td", { class: "c-host", title: [host + (d.port ? ":" + d.port : ""), d.protocol, d.destination && d.destination !== host ? "dest " + d.destination : ""].filter(Boolean).join("  ") },
      el("b", { class: "clickable", dataset: { filter: "host", value: d.host || hostOnly(d.destination) } }, host || "(no host)"),
      d.port ? el("span", { class: "port" }, ":" + d.port) : null);
    const srcText = d.identity || d.source || "";
    const srcCell = el("td", { class: "c-src", title: [d.identity, d.source].filter(Boolean).join("  ") },
      el("span", { class: "clickable" + (d.identity ? " id" : ""), dataset: { filter: "source", value: addrOnly(d.source) } }, srcText));
    const detail = el("td", { class: "c-detail" });
    const words = [];
    if (d.status) detail.append(el("span", { class: "st" }, d.status));
    if (d.method || d.path) words.push(`${d.method || ""} ${d.path || ""}`.trim());
    if (d.location) words.push("→ " + d.location);
    if (d.detail) words.push(d.detail);
    if (d.response_flags) words.push("flags " + d.response_flags);
    detail.append(words.join("  ·  "));
    if (d.serviceentry) detail.append(el("span", { class: "se" }, "SE " + d.serviceentry));
    if (d.chain) detail.append(el("span", { class: "ch clickable", dataset: { chain: d.chain.id } }, `chain hop ${d.chain.hop + 1}`));
    detail.title = [d.status, ...words, d.serviceentry ? "ServiceEntry " + d.serviceentry : "", d.upstream ? "upstream " + d.upstream : ""].filter(Boolean).join("\n");
    return el("tr", { class: cls, dataset: { id: d.id } },
      el("td", { class: "c-time", title: d.time }, hms(t)),
      el("td", { class: "c-verdict" }, el("span", { class: "verdict " + d.verdict }, d.verdict)),
      el("td", { class: "c-layer", title: d.via ? "through the explicit proxy" : "" }, d.via ? d.layer + " via " + d.via : d.layer),
      srcCell, hostCell,
      el("td", { class: "c-reason" }, el("code", { class: "clickable", dataset: { filter: "reason", value: d.reason } }, d.reason)),
      detail);
  }
  const hostOnly = (a) => (a || "").replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  const addrOnly = (a) => { const m = /^\[?([^\]]*?)\]?:\d+$/.exec(a || ""); return m ? m[1] : a || ""; };

  // Clicks on a value filter by it; on a chain, open the chains view.
  document.addEventListener("click", (ev) => {
    const t = ev.target.closest("[data-filter], [data-chain]");
    if (!t) return;
    if (t.dataset.chain) {
      state.view = "chains";
      writeURL(); showView(); refreshView();
      return;
    }
    if (t.dataset.value) setFilter(t.dataset.filter, t.dataset.value);
  });

  $("#pause").addEventListener("click", () => {
    live.paused = !live.paused;
    $("#pause").setAttribute("aria-pressed", String(live.paused));
    setLive(live.paused ? "paused" : "on", live.paused ? "paused" : "live");
    if (!live.paused) schedule();
    renderShowing();
  });

  // ---- aggregates ----------------------------------------------------------

  let overviewDue = 0;
  function bumpOverview() {
    // New decisions arrived: refresh the numbers soon, at most once a second.
    if (state.view !== "decisions" || overviewDue) return;
    overviewDue = setTimeout(() => { overviewDue = 0; loadAggregates(); }, 1000);
  }

  async function loadAggregates() {
    let a;
    try {
      a = await getJSON("/api/v1/aggregates?" + apiQuery({ top: "8" }).toString());
      filterError("");
    } catch (e) {
      filterError(e.message);
      return;
    }
    $("#s-deny").textContent = fmtN(a.by_verdict.deny);
    $("#s-audit").textContent = fmtN(a.by_verdict["audit-deny"]);
    $("#s-allow").textContent = fmtN(a.by_verdict.allow);
    topList($("#top-dest"), a.top_destinations, (k) => setFilter("host", hostOnly(k)));
    topList($("#top-src"), a.top_sources, (k) => { if (/^[0-9a-f.:]+$/i.test(k)) setFilter("source", k); });
    chart(a.per_minute || []);
  }

  function topList(ol, items, onPick) {
    ol.replaceChildren();
    if (!items || items.length === 0) {
      ol.append(el("li", { class: "empty-li" }, "nothing denied in the window"));
      return;
    }
    const max = Math.max(...items.map((c) => c.count));
    for (const c of items) {
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.max(2, (100 * c.count) / max) + "%";
      const k = el("span", { class: "k", title: `${c.key}: ${c.count} denials, last ${new Date(c.last_seen).toLocaleTimeString()}` }, c.key);
      k.addEventListener("click", () => onPick(c.key));
      ol.append(el("li", null, bar, k, el("span", { class: "v" }, fmtN(c.count))));
    }
  }

  function chart(buckets) {
    const s = $("#chart");
    s.replaceChildren();
    const W = 600, H = 110, top = 6;
    for (const y of [0.25, 0.5, 0.75]) s.append(svg("line", { class: "grid-line", x1: 0, x2: W, y1: top + (H - top) * y, y2: top + (H - top) * y }));
    const max = Math.max(0, ...buckets.map((b) => b.deny + b.audit_deny));
    $("#chart-from").textContent = buckets.length ? hm(new Date(buckets[0].start)) : "";
    $("#chart-to").textContent = buckets.length ? hm(new Date(buckets[buckets.length - 1].start)) : "";
    $("#chart-max").textContent = max ? `peak ${fmtN(max)}/min` : "";
    if (max === 0) {
      const t = svg("text", { class: "none", x: W / 2, y: H / 2 + 4, "text-anchor": "middle" });
      t.textContent = "no denials in the window";
      s.append(t);
      return;
    }
    const n = buckets.length, bw = W / n, gap = n > 120 ? 0 : Math.min(2, bw * 0.2);
    buckets.forEach((b, i) => {
      const x = i * bw + gap / 2, w = Math.max(0.5, bw - gap);
      const hd = ((H - top) * b.deny) / max, ha = ((H - top) * b.audit_deny) / max;
      const title = `${hm(new Date(b.start))}: ${b.deny} deny, ${b.audit_deny} audit-deny, ${b.allow} allow`;
      if (b.deny) {
        const r = svg("rect", { class: "bar-deny", x, width: w, y: H - hd, height: hd });
        r.append(svg("title")); r.firstChild.textContent = title;
        s.append(r);
      }
      if (b.audit_deny) {
        const r = svg("rect", { class: "bar-audit", x, width: w, y: H - hd - ha, height: ha });
        r.append(svg("title")); r.firstChild.textContent = title;
        s.append(r);
      }
    });
  }

  // ---- redirect chains -----------------------------------------------------

  async function loadChains() {
    let out;
    try {
      out = await getJSON("/api/v1/chains?" + apiQuery({ limit: "50" }).toString());
    } catch (e) {
      filterError(e.message);
      return;
    }
    const chains = out.chains || [];
    const denied = chains.filter((c) => c.denied).length;
    const n = $("#n-chains");
    n.textContent = chains.length ? fmtN(chains.length) : "";
    n.classList.toggle("alert", denied > 0);
    const box = $("#chains");
    box.replaceChildren();
    if (chains.length === 0) {
      box.append(el("p", { class: "empty card" }, "No redirect chains match the filters."));
      return;
    }
    for (const c of chains) {
      const hops = el("div", { class: "hops" });
      c.hops.forEach((h, i) => {
        if (i > 0) hops.append(el("span", { class: "arrow", "aria-hidden": "true" }, "→"));
        hops.append(el("div", { class: "hop " + h.verdict, dataset: { verdict: h.verdict, hop: h.hop }, title: h.url },
          el("div", { class: "url" }, h.url),
          el("div", { class: "meta" },
            el("span", { class: "verdict " + h.verdict }, h.verdict),
            h.status ? el("span", { class: "mono" }, h.status) : el("span", null, "not followed"),
            h.verdict !== "allow" ? el("code", null, h.reason) : null)));
      });
      box.append(el("div", { class: "chain" + (c.denied ? " denied" : ""), dataset: { chain: "" , id: c.id } },
        el("div", { class: "chain-head" },
          el("span", null, hms(new Date(c.start))),
          el("span", { class: "mono" }, c.source),
          el("span", null, `${c.hops.length} hops`),
          c.denied ? el("span", { class: "verdict deny" }, "denied") : el("span", { class: "verdict allow" }, "allowed"),
          el("span", { class: "cid" }, c.id)),
        hops));
    }
    // data-chain on the cards is only a marker; keep clicks on them inert.
    for (const c of $$(".chain", box)) delete c.dataset.chain;
  }

  // ---- suggestions and the AUDIT summary ------------------------------------

  let allYAML = "";
  async function loadSuggestions() {
    const since = state.f.since ? "?since=" + encodeURIComponent(state.f.since) : "";
    let js, yaml, audit;
    try {
      [js, yaml, audit] = await Promise.all([
        getJSON("/api/v1/suggestions" + (since ? since + "&" : "?") + "format=json"),
        getText("/api/v1/suggestions" + (since ? since + "&" : "?") + "format=yaml"),
        getJSON("/api/v1/aggregates?" + new URLSearchParams(Object.assign({ verdict: "audit-deny", top: "50" }, state.f.since ? { since: state.f.since } : {})).toString()),
      ]);
    } catch (e) {
      filterError(e.message);
      return;
    }
    allYAML = yaml;
    renderAudit(audit);
    const list = js.suggestions || [];
    $("#n-suggestions").textContent = list.length ? fmtN(list.length) : "";
    $("#n-suggestions").classList.toggle("alert", list.length > 0);
    const docs = splitYAML(yaml);
    const box = $("#suggestions");
    box.replaceChildren();
    $("#copy-all").hidden = list.length === 0;
    if (list.length === 0) {
      box.append(el("p", { class: "empty card" }, "Nothing denied in the window: nothing to suggest."));
      return;
    }
    for (const s of list) {
      const doc = docs.get(s.name) || "";
      const ports = (s.ports || []).map((p) => `${p.number}/${p.protocol}`).join(", ");
      const copy = el("button", { type: "button", class: "btn small copy" }, "Copy YAML");
      copy.addEventListener("click", () => copyText(doc, `Copied the ServiceEntry for ${s.host}`));
      box.append(el("article", { class: "sugg", dataset: { host: s.host } },
        el("div", { class: "sugg-head" },
          el("div", null,
            el("div", { class: "sugg-host" }, s.host),
            el("div", { class: "sugg-meta" },
              `${fmtN(s.denials)} denial${s.denials === 1 ? "" : "s"} · ${ports} · ${s.resolution} · last ${new Date(s.last_seen).toLocaleTimeString()}`,
              s.sources && s.sources.length ? ` · from ${s.sources.slice(0, 3).join(", ")}${s.sources.length > 3 ? " …" : ""}` : "",
              s.covers && s.covers.length ? ` · covers ${s.covers.join(", ")}` : "")),
          copy),
        s.notes && s.notes.length ? el("div", { class: "sugg-notes" }, s.notes.join(" ")) : null,
        yamlBlock(doc)));
    }
  }

  // splitYAML maps each document's metadata.name to the document.
  function splitYAML(yaml) {
    const m = new Map();
    for (const doc of yaml.split(/^---\s*$/m)) {
      const name = /^\s+name:\s*(\S+)\s*$/m.exec(doc.replace(/^#.*$/gm, ""));
      if (name) m.set(name[1].replace(/^["']|["']$/g, ""), doc.replace(/^\n+/, ""));
    }
    return m;
  }
  function yamlBlock(doc) {
    const pre = el("pre", { class: "yaml" });
    for (const line of doc.replace(/\n$/, "").split("\n")) {
      const k = /^(\s*-?\s*)([A-Za-z][\w.-]*:)(.*)$/.exec(line);
      if (/^\s*#/.test(line)) pre.append(el("span", { class: "cm" }, line));
      else if (k) pre.append(k[1], el("span", { class: "key" }, k[2]), k[3]);
      else pre.append(line);
      pre.append("\n");
    }
    return pre;
  }
  $("#copy-all").addEventListener("click", () => copyText(allYAML, "Copied every suggested ServiceEntry"));

  function renderAudit(a) {
    const box = $("#audit");
    box.replaceChildren();
    const outbound = health && health.outbound;
    if (!a.total) {
      box.className = "card audit-box";
      box.append(el("h3", null, "Would break under REGISTRY_ONLY: nothing"),
        el("div", { class: "muted" }, outbound === "AUDIT" ?
          "No audit-deny traffic in the window: every connection went to a listed host." :
          `No audit-deny traffic in the window. It is recorded when egressd runs with --outbound AUDIT${outbound ? ` (now ${outbound})` : ""}.`));
      return;
    }
    box.className = "card audit-box breaks";
    const dests = a.top_destinations || [];
    box.append(el("h3", null, `Would break under REGISTRY_ONLY: ${fmtN(a.total)} connections to ${fmtN(dests.length)}${dests.length >= 50 ? "+" : ""} destinations`),
      el("div", { class: "muted" }, "Audit-denied traffic went through, but REGISTRY_ONLY would refuse it. Apply the suggestions below before switching."),
      el("ul", null, ...dests.map((c) => el("li", null, el("span", null, c.key), el("b", null, fmtN(c.count))))));
  }

  async function copyText(text, what) {
    try {
      if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
      else {
        const ta = el("textarea", { readonly: true });
        ta.value = text;
        ta.className = "offscreen";
        document.body.append(ta);
        ta.select();
        document.execCommand("copy");
        ta.remove();
      }
      toast(what);
    } catch (e) {
      toast("Copy failed: " + e.message);
    }
  }
  let toastTimer;
  function toast(msg) {
    const t = $("#toast");
    t.textContent = msg;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 1800);
  }

  // ---- allowlist -------------------------------------------------------------

  let allowlist = null;
  async function loadAllowlist() {
    try {
      allowlist = await getJSON("/api/v1/allowlist");
    } catch (e) {
      $("#allow-meta").textContent = "Allowlist: " + e.message;
      return;
    }
    const n = $("#n-allowlist");
    n.textContent = allowlist.loaded ? fmtN(allowlist.hosts.length) + (allowlist.errors ? ` · ${allowlist.errors} error${allowlist.errors === 1 ? "" : "s"}` : "") : "";
    n.classList.toggle("alert", allowlist.errors > 0);
    renderAllowlist();
    loadGateway();
  }

  // The gateway model published: every filter chain, in words.
  let gateway = null;
  async function loadGateway() {
    try {
      gateway = await getJSON("/api/v1/gateway");
    } catch (e) {
      $("#gateway-meta").textContent = "Gateway: " + e.message;
      return;
    }
    renderGateway();
  }

  function renderGateway() {
    const g = gateway;
    if (!g) return;
    const listeners = new Set(g.rows.map((r) => r.listener));
    $("#gateway-meta").textContent = g.loaded ?
      `Gateway: ${fmtN(listeners.size)} listener${listeners.size === 1 ? "" : "s"}, ${fmtN(g.rows.length)} filter chain${g.rows.length === 1 ? "" : "s"}, ${fmtN(g.clusters)} cluster${g.clusters === 1 ? "" : "s"} · ${g.gateway.outbound}` :
      "Gateway: nothing published yet.";
    const warnings = (g.gateway && g.gateway.warnings) || [];
    const box = $("#gateway-warnings");
    box.replaceChildren();
    if (warnings.length) {
      box.append(el("div", { class: "problems" },
        el("h3", null, `${warnings.length} thing${warnings.length === 1 ? "" : "s"} left out of the gateway`),
        el("ul", null, ...warnings.map((w) => el("li", null, el("span", { class: "sev warning" }, "warning"), el("div", null, w))))));
    }
    // Policies written for other workloads: shown, not errors.
    const notApplied = (g.gateway && g.gateway.notApplied) || [];
    if (notApplied.length) {
      box.append(el("div", { class: "problems info" },
        el("h3", null, `${notApplied.length} polic${notApplied.length === 1 ? "y" : "ies"} not for the gateway (written for other workloads; not applied)`),
        el("ul", null, ...notApplied.map((n) => el("li", null, el("span", { class: "sev info" }, "skipped"),
          el("div", null, `${n.ref.kind} ${n.ref.namespace}/${n.ref.name}: ${n.why}`))))));
    }
    const needle = $("#allow-search").value.trim().toLowerCase();
    const tb = $("#gateway tbody");
    const frag = document.createDocumentFragment();
    let last = "";
    for (const r of g.rows) {
      if (needle && !(r.chain + " " + r.match + " " + r.action).toLowerCase().includes(needle)) continue;
      frag.append(el("tr", { dataset: { chain: r.chain } },
        el("td", { class: "mono" + (r.listener === last ? " same" : "") }, `${r.listener} :${r.listen}`),
        el("td", { class: "mono", title: r.chain }, r.chain, r.default ? el("span", { class: "muted" }, " default") : null),
        el("td", { title: r.match }, r.match),
        el("td", { class: r.action.startsWith("close") ? "bad" : "" }, r.action)));
      last = r.listener;
    }
    tb.replaceChildren(frag);
    if (!tb.childElementCount) tb.append(el("tr", null, el("td", { colspan: 4, class: "muted" }, g.loaded ? "No filter chain matches." : "Nothing published yet.")));
  }

  function renderAllowlist() {
    const a = allowlist;
    if (!a) return;
    const probs = $("#problems");
    probs.replaceChildren();
    if (a.problems.length) {
      probs.append(el("div", { class: "problems" },
        el("h3", null, `${a.errors} invalid resource${a.errors === 1 ? "" : "s"} skipped, ${a.problems.length - a.errors} warning${a.problems.length - a.errors === 1 ? "" : "s"}`),
        el("ul", null, ...a.problems.map((p) => el("li", null,
          el("span", { class: "sev " + p.severity }, p.severity),
          el("div", null,
            el("div", null, `${p.ref.kind || "resource"} ${p.ref.namespace || ""}/${p.ref.name || ""}${p.field ? " · " + p.field : ""}: `, el("b", null, p.message)),
            p.ref.file ? el("div", { class: "where" }, p.ref.file + (p.ref.line ? ":" + p.ref.line : "")) : null))))));
    }
    $("#allow-meta").textContent = a.loaded ?
      `${fmtN(a.hosts.length)} allowed host${a.hosts.length === 1 ? "" : "s"} from ${fmtN(a.entries.length)} ServiceEntr${a.entries.length === 1 ? "y" : "ies"}, ${fmtN(a.rules.length)} DestinationRule${a.rules.length === 1 ? "" : "s"} · version ${short(a.version)}` :
      "No allowlist loaded yet.";
    const needle = $("#allow-search").value.trim().toLowerCase();
    const tb = $("#allowlist tbody");
    const frag = document.createDocumentFragment();
    for (const h of a.hosts) {
      const ports = h.ports.filter((p) => !needle || h.name.includes(needle) || (p.serviceentry || "").toLowerCase().includes(needle));
      ports.forEach((p, i) => {
        frag.append(el("tr", { dataset: { host: h.name } },
          el("td", { class: "h" + (i > 0 ? " same" : ""), title: h.name }, h.name),
          el("td", { class: "mono" }, p.number + (p.target_port ? ` → ${p.target_port}` : "")),
          el("td", null, p.protocol, p.name ? el("span", { class: "muted" }, " " + p.name) : null),
          el("td", { class: "mono", title: p.file ? p.file + (p.line ? ":" + p.line : "") : "" }, p.serviceentry),
          el("td", { class: "mono" }, p.resolution),
          tlsCell(p.tls)));
      });
    }
    tb.replaceChildren(frag);
    if (!tb.childElementCount) tb.append(el("tr", null, el("td", { colspan: 6, class: "muted" }, a.loaded ? "No host matches." : "Nothing allowed yet.")));
  }
  function tlsCell(t) {
    if (!t) return el("td", { class: "tls none" }, "none");
    const parts = [el("span", { class: "mode-tag" }, t.mode), " via " + t.rule];
    if (t.credential_name) parts.push(" · credential " + t.credential_name);
    else if (t.client_certificate) parts.push(" · cert " + t.client_certificate);
    if (t.sni) parts.push(" · sni " + t.sni);
    if (t.insecure_skip_verify) parts.push(el("span", { class: "bad" }, " · verification off"));
    if (t.unsupported) parts.push(el("span", { class: "bad" }, " · refused: " + t.unsupported));
    return el("td", { class: "tls", title: [t.ca_certificates ? "CA " + t.ca_certificates : "", (t.subject_alt_names || []).join(", ")].filter(Boolean).join("\n") }, ...parts);
  }
  $("#allow-search").addEventListener("input", () => { renderAllowlist(); renderGateway(); });

  // ---- health ----------------------------------------------------------------

  let health = null;
  async function loadHealth() {
    try {
      health = await getJSON("/api/v1/health");
    } catch (e) {
      pill("#h-envoy", "bad", "egressd unreachable", e.message);
      return;
    }
    const h = health;
    const mode = $("#outbound");
    mode.textContent = h.outbound || "unknown mode";
    mode.className = "mode " + (h.outbound || "");
    if (!h.envoy_connected) pill("#h-envoy", "bad", "Envoy not connected", "No gateway holds an xDS stream");
    else if (h.rejected) pill("#h-envoy", "bad", "Envoy rejected config", h.rejected);
    else if (h.in_sync) pill("#h-envoy", "ok", `Envoy ACKed ${short(h.acked_version)}`, `Envoy acknowledged the published version ${h.published_version}`);
    else pill("#h-envoy", "warn", `Envoy at ${short(h.acked_version)}`, `published ${h.published_version}, acknowledged ${h.acked_version || "nothing yet"}`);
    pill("#h-source", h.source_synced ? "ok" : "warn", h.source_synced ? `Source synced · ${short(h.allowlist_version)}` : "Source not synced", `allowlist version ${h.allowlist_version || "none"}`);
    if (h.last_snapshot) {
      const age = new Date(h.now) - new Date(h.last_snapshot);
      pill("#h-snapshot", "ok", "Snapshot " + ago(age), new Date(h.last_snapshot).toString());
    } else pill("#h-snapshot", "warn", "No snapshot yet", "");
    const parts = (h.parts || []).map((p) => `${p.name}: ${p.allowlist || "none"}`).join("\n");
    if (h.parts_agree) pill("#h-parts", "ok", "All parts at " + short(h.parts[0].allowlist), parts);
    else pill("#h-parts", "warn", "Parts disagree", parts || "no parts reported");
  }
  function pill(sel, cls, text, title) {
    const p = $(sel);
    p.className = "pill " + cls;
    p.textContent = text;
    p.title = title || "";
  }

  // ---- refresh loop ------------------------------------------------------------

  function refreshView() {
    if (state.view === "decisions") loadAggregates();
    else if (state.view === "chains") loadChains();
    else if (state.view === "suggestions") loadSuggestions();
    else if (state.view === "allowlist") loadAllowlist();
  }
  function refreshAll() {
    refreshView();
    if (state.view !== "chains") loadChains();
    if (state.view !== "suggestions") loadSuggestions();
    if (state.view !== "allowlist") loadAllowlist();
  }

  readURL();
  showFilters();
  showView();
  loadHealth().then(refreshAll);
  connect();
  renderShowing();
  setInterval(() => {
    if (document.hidden) return;
    loadHealth();
    refreshView();
  }, POLL_MS);
  setInterval(() => { if (!document.hidden) refreshAll(); }, 2 * POLL_MS);

  // For tests and the curious: the live table's counters.
  window.egressd = { live, state, MAX_ROWS };
})();
