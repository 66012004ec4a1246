/* TidegateCharts: time charts as inline SVG, no dependencies (the dashboard and the report).
 *
 * TidegateCharts.lineChart(container, {
 *   series: [{t: unixSeconds, v: number|null}],   // null: no value at that time (a gap)
 *   threshold: number|null, thresholdLabel: string,
 *   spans: [{from, to, kind: "pending"|"breach"}], // shaded behind the line
 *   baseline: {from, to}|null,                     // a drift rule's pre-rollout window
 *   markers: [{t, label, kind}],                   // decisions and acts, as vertical lines
 *   unit: string, title: string,
 * })
 * replaces the container's content with the chart. Times are drawn in UTC.
 */
(function (root) {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var HEIGHT = 190;
  var PAD = { left: 52, right: 12, top: 24, bottom: 26 };

  function node(name, attrs, text) {
    var element = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { element.setAttribute(key, attrs[key]); });
    if (text !== undefined) { element.textContent = text; }
    return element;
  }

  function finite(x) { return typeof x === "number" && isFinite(x); }

  function extent(values) {
    var low = Infinity, high = -Infinity;
    values.forEach(function (x) { if (finite(x)) { low = Math.min(low, x); high = Math.max(high, x); } });
    return low <= high ? [low, high] : null;
  }

  function formatValue(x) {
    if (!finite(x)) { return "–"; }
    var size = Math.abs(x);
    if (size !== 0 && (size < 0.001 || size >= 1e6)) { return x.toExponential(2); }
    return String(Number(x.toPrecision(3)));
  }

  function formatTime(t) {
    var iso = new Date(t * 1000).toISOString();
    return iso.slice(11, 19) === "00:00:00" ? iso.slice(5, 10) : iso.slice(11, 16);
  }

  function lineChart(container, options) {
    var o = options || {};
    var series = (o.series || []).filter(function (p) { return finite(p.t); });
    var spans = o.spans || [], markers = o.markers || [];
    var threshold = finite(o.threshold) ? o.threshold : null;
    var width = Math.max(280, container.clientWidth || 600);
    var times = series.map(function (p) { return p.t; });
    if (o.baseline) { times.push(o.baseline.from, o.baseline.to); }
    var x = extent(times) || [0, 1];
    if (x[0] === x[1]) { x = [x[0] - 30, x[1] + 30]; }
    var values = series.map(function (p) { return p.v; });
    if (threshold !== null) { values.push(threshold); }
    var y = extent(values) || [0, 1];
    if (y[0] === y[1]) { y = [y[0] - (Math.abs(y[0]) || 1) / 2, y[1] + (Math.abs(y[1]) || 1) / 2]; }
    var margin = (y[1] - y[0]) * 0.08;
    y = [y[0] - margin, y[1] + margin];
    var plotW = width - PAD.left - PAD.right, plotH = HEIGHT - PAD.top - PAD.bottom;
    function px(t) { return PAD.left + ((t - x[0]) / (x[1] - x[0])) * plotW; }
    function py(v) { return PAD.top + (1 - (v - y[0]) / (y[1] - y[0])) * plotH; }
    function clampX(t) { return Math.min(Math.max(px(t), PAD.left), PAD.left + plotW); }

    var svg = node("svg", {
      "class": "tg-chart", width: width, height: HEIGHT, viewBox: "0 0 " + width + " " + HEIGHT,
      role: "img", "aria-label": o.title || "chart",
    });
    svg.appendChild(node("text", { "class": "tg-title", x: PAD.left, y: 15 }, (o.title || "") + (o.unit ? " (" + o.unit + ")" : "")));
    svg.appendChild(node("rect", { "class": "tg-plot", x: PAD.left, y: PAD.top, width: plotW, height: plotH }));
    if (o.baseline) {
      var b0 = clampX(o.baseline.from), b1 = clampX(o.baseline.to);
      svg.appendChild(node("rect", { "class": "tg-baseline", x: b0, y: PAD.top, width: Math.max(1, b1 - b0), height: plotH }));
    }
    spans.forEach(function (span) {
      var s0 = clampX(span.from), s1 = clampX(span.to);
      svg.appendChild(node("rect", {
        "class": "tg-span tg-" + span.kind, "data-kind": span.kind,
        x: s0, y: PAD.top, width: Math.max(2, s1 - s0), height: plotH,
      }));
    });
    [y[0] + margin, (y[0] + y[1]) / 2, y[1] - margin].forEach(function (v) {
      svg.appendChild(node("text", { "class": "tg-axis", x: PAD.left - 4, y: py(v) + 4, "text-anchor": "end" }, formatValue(v)));
    });
    [x[0], (x[0] + x[1]) / 2, x[1]].forEach(function (t, i) {
      var anchor = ["start", "middle", "end"][i];
      svg.appendChild(node("text", { "class": "tg-axis", x: px(t), y: HEIGHT - 8, "text-anchor": anchor }, formatTime(t)));
    });
    if (threshold !== null) {
      svg.appendChild(node("line", { "class": "tg-threshold", x1: PAD.left, x2: PAD.left + plotW, y1: py(threshold), y2: py(threshold) }));
      svg.appendChild(node("text", { "class": "tg-threshold-label", x: PAD.left + plotW - 4, y: py(threshold) - 4, "text-anchor": "end" },
        o.thresholdLabel || formatValue(threshold)));
    }
    var path = "", open = false;
    series.forEach(function (p) {
      if (!finite(p.v)) { open = false; return; }
      path += (open ? " L" : " M") + px(p.t).toFixed(1) + " " + py(p.v).toFixed(1);
      open = true;
    });
    if (path) { svg.appendChild(node("path", { "class": "tg-line", d: path.trim() })); }
    var last = series.length ? series[series.length - 1] : null;
    if (last && finite(last.v)) {
      svg.appendChild(node("circle", { "class": "tg-last", cx: px(last.t), cy: py(last.v), r: 3 }));
    }
    markers.forEach(function (marker) {
      if (!finite(marker.t) || marker.t < x[0] || marker.t > x[1]) { return; }
      var mx = px(marker.t);
      svg.appendChild(node("line", { "class": "tg-marker tg-" + (marker.kind || "event"), x1: mx, x2: mx, y1: PAD.top, y2: PAD.top + plotH }));
      svg.appendChild(node("text", { "class": "tg-marker-label", x: mx + 3, y: PAD.top + 10 }, marker.label || ""));
    });
    container.textContent = "";
    container.appendChild(svg);
    return svg;
  }

  root.TidegateCharts = { lineChart: lineChart };
})(typeof window !== "undefined" ? window : this);
