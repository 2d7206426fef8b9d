// Stratum dashboard: live refresh of the parts marked data-live, Plotly plots, connects_to arrows
// and the log tail. No inline script (the page's CSP allows none); nothing loaded from elsewhere.
"use strict";
(function () {
  const every = Number(document.body.dataset.liveS || 5) * 1000;

  // Fetch the page again and swap in each [data-live][id] part: the rest (plots, open details,
  // form inputs being typed in) stays as it is.
  async function refresh() {
    if (document.hidden) return;
    try {
      const r = await fetch(location.href, { headers: { "X-Live": "1" }, credentials: "same-origin", redirect: "manual" });
      if (r.type === "opaqueredirect" || r.status === 401) { location.reload(); return; }  // session over: to the login
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      document.querySelectorAll("[data-live][id]").forEach((el) => {
        const fresh = doc.getElementById(el.id);
        if (!fresh) return;
        const open = new Set([...el.querySelectorAll("details[open] summary b")].map((b) => b.textContent));
        el.innerHTML = fresh.innerHTML;
        el.querySelectorAll("details summary b").forEach((b) => { if (open.has(b.textContent)) b.closest("details").open = true; });
      });
      drawLinks();
      hookLogLinks();
    } catch (e) { /* the control plane may be restarting: try again next time */ }
  }

  async function plot(el) {
    try {
      const r = await fetch(el.dataset.plot, { credentials: "same-origin" });
      if (!r.ok) { el.innerHTML = '<p class="empty">plot unavailable (' + r.status + ")</p>"; return; }
      const fig = await r.json();
      el.dataset.points = String(fig.points);
      if (!fig.points) {
        el.innerHTML = '<p class="empty">' + (fig.layout.title.text || "") + ": no points yet</p>";
        return;
      }
      if (window.Plotly) window.Plotly.react(el, fig.data, fig.layout, { responsive: true, displaylogo: false, displayModeBar: false });
    } catch (e) { /* next time */ }
  }

  function plots() { document.querySelectorAll("[data-plot]").forEach(plot); }

  // connects_to: a curve from each chip of a workload to the nearest chip of what it connects to.
  function drawLinks() {
    const svg = document.querySelector("svg.links");
    if (!svg) return;
    const links = JSON.parse(svg.dataset.links || "[]");
    const box = svg.getBoundingClientRect();
    // from the top edge's middle of a chip: curves bow above the row, clear of the chips in it
    const anchor = (el) => { const r = el.getBoundingClientRect(); return [r.left + r.width / 2 - box.left, r.top - box.top]; };
    let paths = "";
    for (const l of links) {
      const from = [...document.querySelectorAll('[data-workload="' + l.from + '"]')];
      const to = [...document.querySelectorAll('[data-workload="' + l.to + '"]')];
      for (const f of from) {
        const [x1, y1] = anchor(f);
        let best = null;
        for (const t of to) { const [x2, y2] = anchor(t); const d = (x2 - x1) ** 2 + (y2 - y1) ** 2; if (!best || d < best[0]) best = [d, x2, y2]; }
        if (!best) continue;
        const [, x2, y2] = best, lift = 14 + Math.min(40, Math.abs(x2 - x1) * 0.12), top = Math.min(y1, y2) - lift;
        paths += '<path data-from="' + l.from + '" data-to="' + l.to + '" d="M' + x1 + "," + y1 + " C" + x1 + "," + top + " " + x2 + "," + top + " " + x2 + "," + y2 + '" marker-end="url(#arrow)"/>';
      }
    }
    svg.innerHTML = '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#f59e0b"/></marker></defs>' + paths;
  }

  // The log tail: the newest bytes of a run's or an instance's log, read again every few seconds.
  let logUrl = null;
  async function tail() {
    const pre = document.getElementById("log-tail");
    if (!pre || !logUrl) return;
    try {
      const r = await fetch(logUrl, { credentials: "same-origin" });
      const text = await r.text();
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      pre.textContent = r.ok ? (text || "(empty)") : "log unavailable: " + text;
      if (atEnd) pre.scrollTop = pre.scrollHeight;
      const src = document.getElementById("log-source");
      if (src) src.textContent = logUrl.split("?")[1] || "";
    } catch (e) { /* next time */ }
  }
  function hookLogLinks() {
    document.querySelectorAll("a.show-log").forEach((a) => {
      a.onclick = () => { logUrl = a.dataset.log; tail(); };
    });
  }

  // -- the overview: drawn from the picture JSON (control_plane/ui/picture.py, views.overview) --------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  const stat = (...parts) => el("div", { class: "stat" }, ...parts);
  const b = (v) => el("b", { text: String(v) });
  const bad = (t) => el("span", { class: "bad", text: t });
  const sum = (o) => Object.values(o || {}).reduce((x, y) => x + y, 0);
  const qs = encodeURIComponent;

  function drawOverview(p) {
    const c = p.counts, counts = document.getElementById("counts");
    counts.replaceChildren(
      stat(b(c.nodes.ready || 0), " nodes ready", c.nodes.down ? bad(", " + c.nodes.down + " down") : null,
           c.nodes.drained ? ", " + c.nodes.drained + " drained" : null),
      stat(b(c.replicas.healthy), " replicas healthy", c.replicas.failed ? bad(", " + c.replicas.failed + " failed") : null,
           c.replicas.starting ? ", " + c.replicas.starting + " starting" : null),
      stat(b(c.instances.healthy), " app instances healthy", c.instances.failed ? bad(", " + c.instances.failed + " failed") : null,
           c.instances.starting ? ", " + c.instances.starting + " starting" : null),
      stat(b(c.services.ready || 0), "/" + sum(c.services) + " services ready, ", b(c.apps.ready || 0), "/" + sum(c.apps) + " apps ready"),
      stat(b("$" + p.cost_per_hour.toFixed(4)), "/h cloud pools"));
    const picture = document.getElementById("picture"), svg = picture.querySelector("svg.links");
    const columns = p.tiers.map((col) => {
      const nodes = col.nodes.map((n) => el("div", { class: "node state-" + n.state, id: "node-" + n.id },
        el("div", { class: "node-head" }, el("a", { href: "/nodes/" + qs(n.name), text: n.name }), " ",
           el("span", { class: "badge state-" + n.state, text: n.state })),
        el("div", { class: "caps", text: n.cpu + " cores · " + (n.memory_mb / 1024).toFixed(1) + " GiB · " + n.arch + (n.gpus ? " · " + n.gpus + " GPU" : "") }),
        el("div", { class: "bars" },
           el("span", { class: "bar", title: "cpu " + n.cpu_percent + " %" }, el("i", { style: "width: " + Math.min(n.cpu_percent, 100) + "%" })),
           el("span", { class: "bar mem", title: "memory " + n.memory_percent + " %" }, el("i", { style: "width: " + Math.min(n.memory_percent, 100) + "%" }))),
        el("ul", { class: "items" }, ...n.items.map((it) => el("li", { class: "chip chip-" + it.kind + " state-" + it.state, "data-workload": it.key, title: it.detail },
           el("a", { href: "/" + it.kind + "s/" + qs(it.name), text: it.label }))))));
      return el("div", { class: "tier tier-" + col.tier },
        el("h2", {}, el("span", { class: "name", text: col.tier }), " ", el("small", { text: col.nodes.length + (col.nodes.length === 1 ? " node" : " nodes") })),
        ...(nodes.length ? nodes : [el("p", { class: "muted", text: "no " + col.tier + " node" })]));
    });
    svg.dataset.links = JSON.stringify(p.links);
    picture.replaceChildren(...columns, svg);
    const unplaced = document.getElementById("unplaced");
    unplaced.replaceChildren(...(p.unplaced.length ? [el("h2", { text: "Waiting for a node" }),
      el("ul", {}, ...p.unplaced.map((it) => el("li", { text: it.kind + " " + it.name + " on " + it.node + ": " + it.detail })))] : []));
    const pools = document.getElementById("pool-table");
    if (!p.pools.length) { pools.replaceChildren(el("p", { class: "muted", text: "no cloud pool" })); }
    else {
      const head = el("tr", {}, ...["pool", "size", "state", "VMs", "joined", "$/VM-hour", "$/hour"].map((h) => el("th", { text: h })));
      pools.replaceChildren(el("table", { class: "list" }, el("thead", {}, head), el("tbody", {}, ...p.pools.map((x) =>
        el("tr", {}, ...[x.name, x.size, x.state, x.vms, x.joined, x.price_per_hour, x.cost_per_hour].map((v) => el("td", { text: String(v) })))))));
    }
    drawLinks();
  }

  async function refreshOverview() {
    if (document.hidden) return;
    try {
      const r = await fetch("/api/overview", { credentials: "same-origin" });
      if (r.status === 401) { location.reload(); return; }
      if (r.ok) drawOverview(await r.json());
    } catch (e) { /* next time */ }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const data = document.getElementById("picture-data");
    if (data) {
      drawOverview(JSON.parse(data.textContent));
      setInterval(refreshOverview, every);
    }
    const pre = document.getElementById("log-tail");
    if (pre && pre.dataset.log) logUrl = pre.dataset.log;
    drawLinks(); hookLogLinks(); tail();
    window.addEventListener("load", plots);  // plotly.min.js is deferred too
    window.addEventListener("resize", drawLinks);
    if (document.querySelector("[data-live][id]")) setInterval(refresh, every);
    setInterval(tail, Math.max(2000, every / 2));
    setInterval(plots, Math.max(15000, every * 3));
  });
})();
