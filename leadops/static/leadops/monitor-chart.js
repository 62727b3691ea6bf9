/* The monitor's "Last hour" chart: jobs per minute by outcome (stacked bars) and the claim wait p95
 * (a line on the right axis), drawn as inline SVG from the page's JSON data block (no CDN, no inline
 * script: the portal's Content-Security-Policy allows scripts from this site only).
 *
 * monitor-live.js moves it: LeadOpsChart.bump(outcome) adds a finished job to the current minute,
 * LeadOpsChart.load(series) redraws from a fresh snapshot (every minute and after a reconnect).
 */
(function () {
  "use strict";
  var svg = document.getElementById("lo-throughput-svg");
  var data = document.getElementById("lo-throughput-data");
  if (!svg || !data) { return; }
  var NS = "http://www.w3.org/2000/svg";
  var W = 720, H = 190, LEFT = 36, RIGHT = 44, TOP = 8, BOTTOM = 22;
  var COLORS = { succeeded: "#2e7d32", failed: "#ef6c00", dead: "#c62828", p95: "#1565c0" };
  var OUTCOMES = ["succeeded", "failed", "dead"];
  var series = JSON.parse(data.textContent);

  function node(name, attrs, text) {
    var el = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (key) { el.setAttribute(key, attrs[key]); });
    if (text !== undefined) { el.textContent = text; }
    return el;
  }

  function minuteOf(ms) { return Math.floor(ms / 60000) * 60000; }

  // Keep the last minute of the series the current minute: shift in empty minutes as time passes.
  function roll() {
    if (!series.length) { return; }
    var last = Date.parse(series[series.length - 1].at);
    var now = minuteOf(Date.now());
    while (last < now) {
      last += 60000;
      series.push({ at: new Date(last).toISOString(), succeeded: 0, failed: 0, dead: 0, claim_p95_s: null });
      series.shift();
    }
  }

  function label(x, y, text, anchor) {
    return node("text", { x: x, y: y, "font-size": 10, "text-anchor": anchor || "middle", fill: "currentColor" }, text);
  }

  function draw() {
    while (svg.lastChild) { svg.removeChild(svg.lastChild); }
    svg.appendChild(node("title", {}, "Jobs per minute by outcome, and claim wait p95, last hour"));
    var plotW = W - LEFT - RIGHT, plotH = H - TOP - BOTTOM;
    var peak = 1, peakWait = 1;
    series.forEach(function (m) {
      peak = Math.max(peak, m.succeeded + m.failed + m.dead);
      if (m.claim_p95_s !== null) { peakWait = Math.max(peakWait, m.claim_p95_s); }
    });
    var slot = plotW / Math.max(1, series.length);
    svg.appendChild(node("line", { x1: LEFT, y1: TOP + plotH, x2: LEFT + plotW, y2: TOP + plotH, stroke: "#999" }));
    svg.appendChild(label(LEFT - 4, TOP + 8, String(peak), "end"));
    svg.appendChild(label(LEFT - 4, TOP + plotH, "0", "end"));
    svg.appendChild(label(LEFT + plotW + 4, TOP + 8, peakWait.toFixed(1) + " s", "start"));
    var points = [];
    series.forEach(function (m, i) {
      var x = LEFT + i * slot, y = TOP + plotH;
      var g = node("g", { "data-minute": m.at });
      g.appendChild(node("title", {}, new Date(m.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) +
        ": " + m.succeeded + " succeeded, " + m.failed + " failed, " + m.dead + " dead" +
        (m.claim_p95_s !== null ? ", claim wait p95 " + m.claim_p95_s + " s" : "")));
      OUTCOMES.forEach(function (outcome) {
        var h = (m[outcome] / peak) * plotH;
        if (h <= 0) { return; }
        y -= h;
        g.appendChild(node("rect", { x: (x + 0.5).toFixed(1), y: y.toFixed(1), width: Math.max(1, slot - 1).toFixed(1),
          height: h.toFixed(1), fill: COLORS[outcome], "data-outcome": outcome, "data-count": m[outcome] }));
      });
      svg.appendChild(g);
      if (m.claim_p95_s !== null) {
        var px = (x + slot / 2).toFixed(1), py = (TOP + plotH - (m.claim_p95_s / peakWait) * plotH).toFixed(1);
        points.push(px + "," + py);
        g.appendChild(node("circle", { cx: px, cy: py, r: 2.5, fill: COLORS.p95 }));
      }
      if (i % 15 === 0 || i === series.length - 1) {
        var at = new Date(m.at);
        svg.appendChild(label(x + slot / 2, H - 6, at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
      }
    });
    if (points.length) {
      svg.appendChild(node("polyline", { points: points.join(" "), fill: "none", stroke: COLORS.p95,
        "stroke-width": 2, "data-series": "claim_p95" }));
    }
    svg.setAttribute("data-drawn-at", new Date().toISOString());
  }

  window.LeadOpsChart = {
    bump: function (outcome) {
      roll();
      if (series.length && OUTCOMES.indexOf(outcome) >= 0) { series[series.length - 1][outcome] += 1; draw(); }
    },
    load: function (fresh) { if (fresh && fresh.length) { series = fresh; roll(); draw(); } }
  };
  roll();
  draw();
  setInterval(function () { roll(); draw(); }, 15000);
})();
