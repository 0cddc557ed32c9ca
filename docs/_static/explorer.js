// The gradient explorer (docs/explorer/index.md). It selects and draws the
// curves `python -m real_jax.grad_analysis.explorer` computed with the
// library's autodiff (window.EXPLORER_DATA, from docs/explorer/data/explorer.json)
// and re-implements no formula. Its state is the page's URL parameters:
//   ?objectives=real,grpo&tau=0.5&epsilon_low=1&epsilon_high=1&clip_ratio_c=0&delta=0
//    &G=8&k=4&sign=negative&s=0
// where epsilon_low / epsilon_high / clip_ratio_c / delta are indices into each
// objective's own values (the data's `controls`), tau a value, s a value of the grid.
(function () {
  "use strict";
  const data = window.EXPLORER_DATA;
  const root = document.getElementById("explorer");
  if (!data || !root) return;
  const names = Object.keys(data.objectives);
  const CLIP = ["epsilon_low", "epsilon_high", "clip_ratio_c", "delta"];
  const TAUS = unique(names.flatMap((n) => data.objectives[n].controls.tau || []));
  const SVG = "http://www.w3.org/2000/svg";

  function unique(xs) { return [...new Set(xs)].sort((a, b) => a - b); }
  function el(tag, attrs, parent) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) { return v === null ? "off" : String(v); }

  // ---- state <-> URL -------------------------------------------------------
  const params = new URLSearchParams(window.location.search);
  const state = {
    objectives: (params.get("objectives") || "grpo,real").split(",").filter((n) => n in data.objectives),
    tau: Number(params.get("tau") || 0.5),
    G: Number(params.get("G") || 8),
    k: Number(params.get("k") || 4),
    sign: params.get("sign") === "positive" ? "positive" : "negative",
    s: Number(params.get("s") || 0),
  };
  // Each clip control is an index into every objective's own list of values;
  // defaults: the index of the objective's default value (the same for all).
  const defaultIndex = {};
  for (const c of CLIP) {
    const owner = names.find((n) => (data.objectives[n].controls[c] || []).length);
    const obj = owner ? data.objectives[owner] : null;
    defaultIndex[c] = obj ? obj.controls[c].indexOf(obj.defaults[c]) : 0;
    state[c] = params.has(c) ? Number(params.get(c)) : defaultIndex[c];
  }
  function syncUrl() {
    const p = new URLSearchParams();
    p.set("objectives", state.objectives.join(","));
    for (const key of ["tau", ...CLIP, "G", "k", "sign", "s"]) p.set(key, state[key]);
    window.history.replaceState(null, "", "?" + p.toString());
  }

  // ---- the data an objective's curves come from -----------------------------
  function setting(name) {
    const obj = data.objectives[name];
    const want = {};
    for (const [c, values] of Object.entries(obj.controls)) {
      want[c] = c === "tau" ? state.tau : values[state[c]];
    }
    return obj.settings.find((entry) =>
      Object.entries(want).every(([c, v]) => entry.setting[c] === v));
  }
  function curves(name) {
    const entry = setting(name);
    if (!entry) return { missing: true };
    const ids = entry.cases[`${state.G},${state.k},${state.sign}`];
    if (!ids) return { invalid: true };
    const at = (i) => (i === null ? null : data.arrays[i]);
    return { probe: at(ids[0]), closed: at(ids[1]), pos: at(ids[2]), neg: at(ids[3]) };
  }

  // ---- controls -------------------------------------------------------------
  const panel = document.createElement("div");
  panel.className = "explorer-controls";
  root.appendChild(panel);
  function row(label, input, note) {
    const r = document.createElement("label");
    r.className = "explorer-row";
    r.innerHTML = `<span class="explorer-name">${label}</span>`;
    r.appendChild(input);
    if (note) { const n = document.createElement("span"); n.className = "explorer-value"; r.appendChild(n); note.el = n; }
    panel.appendChild(r);
    return r;
  }
  function slider(id, count, get, set, label, show) {
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: 0, max: count - 1, step: 1, id: "explorer-" + id });
    const note = {};
    row(label, input, note);
    const refresh = () => { input.value = get(); note.el.textContent = show(); };
    input.addEventListener("input", () => { set(Number(input.value)); update(); });
    refreshers.push(refresh);
  }
  const refreshers = [];

  const picks = document.createElement("div");
  picks.className = "explorer-objectives";
  for (const name of names) {
    const obj = data.objectives[name];
    const box = document.createElement("label");
    box.style.color = obj.color || "#444";
    const input = document.createElement("input");
    Object.assign(input, { type: "checkbox", value: name, id: "explorer-objective-" + name });
    input.checked = state.objectives.includes(name);
    input.addEventListener("change", () => {
      state.objectives = names.filter((n) => document.getElementById("explorer-objective-" + n).checked);
      update();
    });
    box.appendChild(input);
    box.appendChild(document.createTextNode(" " + name));
    box.title = obj.label;
    picks.appendChild(box);
  }
  panel.appendChild(picks);

  slider("tau", TAUS.length, () => TAUS.indexOf(state.tau), (i) => { state.tau = TAUS[i]; },
         "tau (label-based)", () => String(state.tau));
  const CLIP_LABELS = { epsilon_low: "epsilon_low", epsilon_high: "epsilon_high",
                        clip_ratio_c: "dual clip c", delta: "two-sided delta" };
  for (const c of CLIP) {
    const owners = names.filter((n) => (data.objectives[n].controls[c] || []).length);
    if (!owners.length) continue;
    const count = data.objectives[owners[0]].controls[c].length;
    slider(c, count, () => state[c], (i) => {
      // The data cross the clip range's two ends and move the dual clip and delta
      // alone from the defaults: moving one of those resets the others.
      const alone = (x) => x === "clip_ratio_c" || x === "delta";
      for (const other of CLIP) {
        if (other !== c && (alone(c) || alone(other))) state[other] = defaultIndex[other];
      }
      state[c] = i;
    }, CLIP_LABELS[c], () => owners.filter((n) => state.objectives.includes(n))
      .map((n) => `${n} ${fmt(data.objectives[n].controls[c][state[c]])}`).join(", ") || "(no selected objective takes it)");
  }
  const sizes = Object.keys(data.groups).map(Number).sort((a, b) => a - b);
  slider("G", sizes.length, () => sizes.indexOf(state.G), (i) => {
    state.G = sizes[i];
    const ks = data.groups[state.G];
    if (!ks.includes(state.k)) state.k = ks[Math.floor(ks.length / 2)];
  }, "group size G", () => String(state.G));
  slider("k", 7, () => data.groups[state.G].indexOf(state.k), (i) => {
    const ks = data.groups[state.G];
    state.k = ks[Math.min(i, ks.length - 1)];
  }, "number correct k", () => `${state.k} of ${state.G}`);
  const sign = document.createElement("select");
  sign.id = "explorer-sign";
  sign.innerHTML = '<option value="positive">positive (correct)</option><option value="negative">negative (wrong)</option>';
  sign.addEventListener("change", () => { state.sign = sign.value; update(); });
  row("probe rollout", sign);
  refreshers.push(() => { sign.value = state.sign; });
  slider("s", data.s.length, () => data.s.indexOf(state.s), (i) => { state.s = data.s[i]; },
         "probe score s (bars)", () => String(state.s));

  // ---- plots ---------------------------------------------------------------
  const message = document.createElement("p");
  message.className = "explorer-message";
  root.appendChild(message);
  const W = 640, H = 360, M = { l: 56, r: 16, t: 16, b: 44 };
  const plot = el("svg", { id: "explorer-curves", width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  root.appendChild(plot);
  const bars = el("svg", { id: "explorer-bars", width: W, height: 40, viewBox: `0 0 ${W} 40` });
  root.appendChild(bars);

  function axes(svg, x0, x1, y1, xlabel, ylabel) {
    const X = (x) => M.l + (x - x0) / (x1 - x0) * (W - M.l - M.r);
    const Y = (y) => H - M.b - y / y1 * (H - M.t - M.b);
    el("line", { x1: M.l, y1: H - M.b, x2: W - M.r, y2: H - M.b, stroke: "#333" }, svg);
    el("line", { x1: M.l, y1: M.t, x2: M.l, y2: H - M.b, stroke: "#333" }, svg);
    for (let i = 0; i <= 4; i++) {
      const xv = x0 + (x1 - x0) * i / 4, yv = y1 * i / 4;
      el("text", { x: X(xv), y: H - M.b + 16, "text-anchor": "middle", "font-size": 11 }, svg).textContent = xv.toFixed(1);
      el("text", { x: M.l - 6, y: Y(yv) + 4, "text-anchor": "end", "font-size": 11 }, svg).textContent = yv.toPrecision(2);
      el("line", { x1: M.l, y1: Y(yv), x2: W - M.r, y2: Y(yv), stroke: "#ddd" }, svg);
    }
    el("text", { x: (M.l + W - M.r) / 2, y: H - 8, "text-anchor": "middle", "font-size": 12 }, svg).textContent = xlabel;
    el("text", { x: 14, y: (M.t + H - M.b) / 2, "text-anchor": "middle", "font-size": 12,
                 transform: `rotate(-90 14 ${(M.t + H - M.b) / 2})` }, svg).textContent = ylabel;
    return { X, Y };
  }

  function draw() {
    plot.replaceChildren();
    bars.replaceChildren();
    const shown = state.objectives.map((n) => [n, curves(n)]);
    const problems = shown.filter(([, c]) => c.missing || c.invalid).map(([n, c]) =>
      c.invalid ? `${n}: no ${state.sign} probe in a group with k = ${state.k}` : `${n}: not on the grid`);
    message.textContent = problems.join("; ");
    const live = shown.filter(([, c]) => c.probe);
    const top = Math.max(1e-9, ...live.flatMap(([, c]) => [...c.probe, ...c.closed]));
    const { X, Y } = axes(plot, data.s[0], data.s[data.s.length - 1], top * 1.05,
                          "probe score s = log pi - log pi_old", "gradient weight |W| of the probe");
    if (live.some(([n]) => data.objectives[n].family === "label") && 1 / state.tau <= top * 1.05) {
      el("line", { x1: M.l, x2: W - M.r, y1: Y(1 / state.tau), y2: Y(1 / state.tau), stroke: "#777",
                   "stroke-dasharray": "2 3", class: "explorer-bound" }, plot);
      el("text", { x: W - M.r - 4, y: Y(1 / state.tau) - 4, "text-anchor": "end", "font-size": 11,
                   fill: "#555" }, plot).textContent = "1 / tau";
    }
    live.forEach(([name, c], i) => {
      const colour = data.objectives[name].color || "#444";
      for (const [kind, values] of [["probe", c.probe], ["closed", c.closed]]) {
        const d = values.map((v, j) => `${j ? "L" : "M"}${X(data.s[j]).toFixed(2)},${Y(v).toFixed(2)}`).join("");
        el("path", { d, fill: "none", stroke: kind === "closed" ? "#000" : colour,
                     "stroke-width": kind === "closed" ? 1 : 2.5,
                     "stroke-dasharray": kind === "closed" ? "4 3" : "none",
                     "data-objective": name, "data-kind": kind,
                     "data-values": JSON.stringify(values) }, plot);
      }
      el("text", { x: M.l + 8, y: M.t + 14 + 14 * i, "font-size": 12, fill: colour }, plot).textContent =
        `${name} (autodiff; closed form dashed)`;
    });
    // The group's weights at the probe's score, one row of bars per objective.
    const j = data.s.indexOf(state.s);
    const rowH = 56;
    bars.setAttribute("height", rowH * Math.max(1, live.length) + 20);
    bars.setAttribute("viewBox", `0 0 ${W} ${rowH * Math.max(1, live.length) + 20}`);
    live.forEach(([name, c], r) => {
      const colour = data.objectives[name].color || "#444";
      const others = state.sign === "positive" ? [state.k - 1, state.G - state.k] : [state.k, state.G - state.k - 1];
      const heights = [c.probe[j], ...Array(others[0]).fill(c.pos ? c.pos[j] : 0),
                       ...Array(others[1]).fill(c.neg ? c.neg[j] : 0)];
      const labels = [state.sign, ...Array(others[0]).fill("positive"), ...Array(others[1]).fill("negative")];
      const big = Math.max(1e-9, ...heights);
      const bw = (W - M.l - M.r) / heights.length;
      el("text", { x: 4, y: 16 + r * rowH + rowH / 2, "font-size": 11, fill: colour }, bars).textContent = name;
      heights.forEach((h, b) => {
        const hh = h / big * (rowH - 16);
        el("rect", { x: M.l + b * bw + 1, y: 10 + r * rowH + (rowH - 16 - hh), width: Math.max(1, bw - 2), height: hh,
                     fill: labels[b] === "positive" ? "#4daf4a" : "#e41a1c", opacity: b === 0 ? 1 : 0.55,
                     stroke: b === 0 ? "#000" : "none", "data-objective": name, "data-weight": h }, bars);
      });
    });
    el("text", { x: M.l, y: rowH * Math.max(1, live.length) + 16, "font-size": 11, fill: "#555" }, bars).textContent =
      `at s = ${state.s}: the probe (outlined), the other correct (green) and wrong (red) rollouts; each row to its own scale`;
  }

  function update() {
    refreshers.forEach((f) => f());
    syncUrl();
    draw();
  }

  window.explorer = { state, curves, update };
  update();
  root.setAttribute("data-ready", "1");
})();
