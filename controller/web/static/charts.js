/*
 * TidegateCharts: small SVG time charts for tidegate's report and dashboard.
 * Plain browser JavaScript, no dependency, no network; shipped in the Python package and
 * inlined into the self-contained report.
 *
 * TidegateCharts.lineChart(container, options) draws one signal over time:
 *   series:         [{t: unixSeconds, v: number|null}]  (null: no value, drawn as a gap)
 *   threshold:      number|null, with thresholdLabel: string
 *   spans:          [{from, to, kind: "pending"|"breach"}]  shaded behind the line
 *   baseline:       {from, to}|null  the drift baseline window, shaded and labelled
 *   markers:        [{t, label, kind}]  vertical lines (kind colours them: rollback, step_down,
 *                   manual, …; an unknown kind is grey)
 *   unit, title:    strings
 *   optional:       from, to (the time axis, default: the data's extent), height (px, 220),
 *                   ended (unix seconds: the time after it is greyed, "after")
 * It returns {update(options), destroy()}; calling it again on a container replaces the chart.
 * The chart redraws itself at the container's width when that changes (laptop, phone, print).
 *
 * TidegateCharts.laneChart(container, options) draws one row per target:
 *   lanes:   [{name, segments: [{from, to, label, kind}], events: [{t, label, kind}]}]
 *   markers, from, to, ended, title as above. Segment kinds: idle, traffic, paused,
 *   rolled_back, off, on, failed. Event kinds: applied, already_done, refused, failed,
 *   unfinished, page.
 *
 * Everything is UTC. Elements carry classes (tg-line, tg-threshold, tg-span-breach, …) so a
 * page's CSS can restyle them; colours are set as attributes, so the charts also look right
 * on a page without any tidegate CSS.
 */
(function (global) {
  "use strict";

  var NS = "http://www.w3.org/2000/svg";
  var COLOR = {
    line: "#1d4ed8",
    threshold: "#b42318",
    pending: "#f79009",
    breach: "#d92d20",
    baseline: "#2e90fa",
    grid: "#e4e7ec",
    axis: "#98a2b3",
    text: "#344054",
    muted: "#667085"
  };
  var MARKER = {
    rollback: "#b42318", fail: "#b42318", page: "#b42318", complete: "#7a271a",
    step_down: "#dc6803", pause: "#dc6803", hold: "#dc6803",
    manual: "#7a5af8", notify: "#0e9384",
    start: "#475467", advance: "#475467", resume: "#475467", promote: "#039855"
  };
  var SEGMENT = {
    idle: "#e4e7ec", traffic: "#b2ccff", paused: "#fedf89", rolled_back: "#d0d5dd",
    off: "#98a2b3", on: "#a6f4c5", failed: "#fda29b"
  };
  var OUTCOME = {
    applied: "#039855", already_done: "#667085", refused: "#d92d20", failed: "#b42318",
    unfinished: "#dc6803", page: "#b42318"
  };
  var TIME_STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
    345600, 604800, 1209600, 2592000];

  // --- small helpers ---------------------------------------------------------------------

  function el(tag, attrs, parent) {
    var node = document.createElementNS(NS, tag);
    for (var key in attrs) {
      if (attrs[key] !== undefined && attrs[key] !== null) node.setAttribute(key, String(attrs[key]));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function label(parent, x, y, content, attrs) {
    var node = el("text", Object.assign({x: x, y: y, fill: COLOR.text, "font-size": 11}, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  function tooltip(node, content) {
    el("title", {}, node).textContent = content;
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function clock(t, seconds) {
    var d = new Date(t * 1000);
    var text = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    return seconds ? text + ":" + pad(d.getUTCSeconds()) : text;
  }

  function day(t) {
    var d = new Date(t * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
  }

  function formatValue(v, unit) {
    var text = String(Number(v.toPrecision(4)));
    if (!unit) return text;
    return unit === "%" ? text + "%" : text + " " + unit;
  }

  function timeTicks(from, to, width) {
    var wanted = Math.max(2, Math.floor(width / 80));
    var step = TIME_STEPS[TIME_STEPS.length - 1];
    for (var i = 0; i < TIME_STEPS.length; i++) {
      if ((to - from) / TIME_STEPS[i] <= wanted) { step = TIME_STEPS[i]; break; }
    }
    var ticks = [];
    for (var t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
    return {ticks: ticks, step: step};
  }

  function timeLabel(t, step) {
    if (step >= 86400) return day(t).slice(5);
    return t % 86400 === 0 ? day(t).slice(5) : clock(t);
  }

  function valueTicks(min, max, count) {
    if (min === max) {
      var half = Math.abs(min) / 2 || 1;
      min -= half; max += half;
    }
    var raw = (max - min) / count;
    var magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var norm = raw / magnitude;
    var step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
    var low = Math.floor(min / step) * step;
    var high = Math.ceil(max / step) * step;
    var ticks = [];
    for (var v = low; v <= high + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
    return {ticks: ticks, min: low, max: high};
  }

  function extent(options, series) {
    var times = series.map(function (p) { return p.t; });
    (options.spans || []).forEach(function (s) { times.push(s.from, s.to); });
    if (options.baseline) times.push(options.baseline.from, options.baseline.to);
    var from = options.from != null ? options.from : Math.min.apply(null, times.length ? times : [0]);
    var to = options.to != null ? options.to : Math.max.apply(null, times.length ? times : [1]);
    if (to <= from) to = from + 60;
    return {from: from, to: to};
  }

  // Redraw at the container's width, now and whenever it changes.
  function responsive(container, draw) {
    var width = -1;
    function redraw() {
      var now = container.clientWidth || 640;
      if (now === width) return;
      width = now;
      draw(now);
    }
    redraw();
    var observer = null;
    var onResize = function () { redraw(); };
    if (typeof ResizeObserver === "function") {
      observer = new ResizeObserver(function () { global.requestAnimationFrame(redraw); });
      observer.observe(container);
    } else {
      global.addEventListener("resize", onResize);
    }
    return {
      force: function () { width = -1; redraw(); },
      stop: function () {
        if (observer) observer.disconnect();
        global.removeEventListener("resize", onResize);
      }
    };
  }

  function replace(container, svg) {
    while (container.firstChild) container.removeChild(container.firstChild);
    container.appendChild(svg);
  }

  function own(container, handle) {
    if (container.__tidegateChart) container.__tidegateChart.destroy();
    container.__tidegateChart = handle;
    return handle;
  }

  // Marker labels in up to three rows, so that labels close in time do not overwrite each other.
  function drawMarkers(svg, markers, x, top, bottom, left, right, unlabelled) {
    var rowsEnd = [-Infinity, -Infinity, -Infinity];
    (markers || []).forEach(function (m) {
      var px = x(m.t);
      if (px < left - 0.5 || px > right + 0.5) return;
      var color = MARKER[m.kind] || COLOR.muted;
      var group = el("g", {"class": "tg-marker tg-marker-" + m.kind}, svg);
      el("line", {x1: px, x2: px, y1: top, y2: bottom, stroke: color, "stroke-width": 1.25,
        "stroke-dasharray": "3 2"}, group);
      var text = m.label || m.kind;
      tooltip(group, clock(m.t, true) + " UTC  " + text);
      if (unlabelled) return;
      var width = text.length * 6 + 6;
      var anchorEnd = px + width > right;
      var start = anchorEnd ? px - width : px;
      var row = 0;
      while (row < rowsEnd.length && rowsEnd[row] > start) row++;
      if (row === rowsEnd.length) return;  // no room left: the tooltip still names it
      rowsEnd[row] = start + width + 4;
      label(group, anchorEnd ? px - 3 : px + 3, top + 10 + row * 12, text,
        {fill: color, "font-size": 10, "text-anchor": anchorEnd ? "end" : "start"});
    });
  }

  // The time after the rollout's last record: the signals go on, the rollout acted no more.
  function drawEnded(svg, ended, x, top, bottom, right) {
    if (ended === null || ended === undefined || !isFinite(ended)) return;
    var ex = x(ended);
    if (ex >= right) return;
    var rect = el("rect", {"class": "tg-ended", x: ex, y: top, width: right - ex, height: bottom - top,
      fill: "#98a2b3", "fill-opacity": 0.16}, svg);
    tooltip(rect, "after the rollout's last record, " + clock(ended, true) + " UTC");
    if (right - ex > 40) {
      label(svg, right - 3, bottom - 6, "after", {"class": "tg-ended-label", "text-anchor": "end",
        fill: COLOR.muted, "font-size": 10});
    }
  }

  function drawTimeAxis(svg, x, from, to, left, right, y) {
    var axis = timeTicks(from, to, right - left);
    var group = el("g", {"class": "tg-axis tg-axis-x"}, svg);
    el("line", {x1: left, x2: right, y1: y, y2: y, stroke: COLOR.axis}, group);
    axis.ticks.forEach(function (t) {
      var px = x(t);
      el("line", {x1: px, x2: px, y1: y, y2: y + 4, stroke: COLOR.axis}, group);
      label(group, px, y + 15, timeLabel(t, axis.step), {"text-anchor": "middle", fill: COLOR.muted});
    });
    return axis;
  }

  // --- the line chart ----------------------------------------------------------------------

  function lineChart(container, options) {
    var current = options;
    var view = responsive(container, function (width) { replace(container, drawLine(current, width)); });
    return own(container, {
      update: function (next) { current = next; view.force(); },
      destroy: function () { view.stop(); }
    });
  }

  function drawLine(options, width) {
    var series = (options.series || []).filter(function (p) { return p && isFinite(p.t); });
    var height = options.height || 220;
    var unit = options.unit || "";
    var valued = series.filter(function (p) { return p.v !== null && p.v !== undefined && isFinite(p.v); });
    var values = valued.map(function (p) { return p.v; });
    var hasThreshold = options.threshold !== null && options.threshold !== undefined && isFinite(options.threshold);
    if (hasThreshold) values.push(options.threshold);
    var low = values.length ? Math.min.apply(null, values) : 0;
    var high = values.length ? Math.max.apply(null, values) : 1;
    if (low >= 0 && low <= high * 0.5) low = 0;  // counts and error rates read best from zero
    var yAxis = valueTicks(low, high, Math.max(2, Math.floor((height - 60) / 36)));
    var yLabels = yAxis.ticks.map(function (v) { return formatValue(v, unit); });
    var longest = Math.max.apply(null, yLabels.map(function (s) { return s.length; }));
    var left = 12 + longest * 6.5, right = width - 12, top = 22, bottom = height - 24;
    var span = extent(options, series);
    var x = function (t) { return left + (t - span.from) / (span.to - span.from) * (right - left); };
    var y = function (v) { return bottom - (v - yAxis.min) / (yAxis.max - yAxis.min) * (bottom - top); };
    var clampX = function (t) { return Math.max(left, Math.min(right, x(t))); };

    var svg = el("svg", {
      "class": "tg-chart", width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", "font-family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
      "aria-label": (options.title || "chart") + (hasThreshold ? ", threshold " + formatValue(options.threshold, unit) : "")
    });
    svg.setAttribute("data-points", String(valued.length));
    el("title", {}, svg).textContent = options.title || "";

    if (options.baseline) {
      var b = options.baseline;
      var bx = clampX(b.from), bw = Math.max(1, clampX(b.to) - bx);
      var base = el("rect", {"class": "tg-baseline", x: bx, y: top, width: bw, height: bottom - top,
        fill: COLOR.baseline, "fill-opacity": 0.08}, svg);
      tooltip(base, "baseline " + day(b.from) + " " + clock(b.from) + "–" + clock(b.to) + " UTC");
      label(svg, bx + 4, bottom - 6, "baseline", {"class": "tg-baseline-label", fill: COLOR.baseline, "font-size": 10});
    }
    (options.spans || []).forEach(function (s) {
      var sx = clampX(s.from), sw = Math.max(2, clampX(s.to) - sx);
      var color = s.kind === "breach" ? COLOR.breach : COLOR.pending;
      var rect = el("rect", {"class": "tg-span tg-span-" + s.kind, "data-kind": s.kind, x: sx, y: top, width: sw,
        height: bottom - top, fill: color, "fill-opacity": s.kind === "breach" ? 0.2 : 0.14}, svg);
      tooltip(rect, s.kind + " " + clock(s.from, true) + "–" + clock(s.to, true) + " UTC");
    });

    drawEnded(svg, options.ended, x, top, bottom, right);
    var grid = el("g", {"class": "tg-axis tg-axis-y"}, svg);
    yAxis.ticks.forEach(function (v, i) {
      el("line", {x1: left, x2: right, y1: y(v), y2: y(v), stroke: COLOR.grid}, grid);
      label(grid, left - 6, y(v) + 4, yLabels[i], {"text-anchor": "end", fill: COLOR.muted});
    });
    drawTimeAxis(svg, x, span.from, span.to, left, right, bottom);

    if (hasThreshold) {
      var ty = y(options.threshold);
      var line = el("line", {"class": "tg-threshold", x1: left, x2: right, y1: ty, y2: ty,
        stroke: COLOR.threshold, "stroke-width": 1.5, "stroke-dasharray": "6 4"}, svg);
      tooltip(line, "threshold " + (options.thresholdLabel || formatValue(options.threshold, unit)));
      label(svg, right - 2, ty - 4, options.thresholdLabel || formatValue(options.threshold, unit),
        {"class": "tg-threshold-label", "text-anchor": "end", fill: COLOR.threshold, "font-size": 10});
    }

    var path = "", open = false, lonely = [];
    series.forEach(function (p, i) {
      var ok = p.v !== null && p.v !== undefined && isFinite(p.v);
      if (!ok) { open = false; return; }
      var cmd = open ? "L" : "M";
      path += cmd + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1);
      var next = series[i + 1];
      if (!open && !(next && next.v !== null && next.v !== undefined && isFinite(next.v))) lonely.push(p);
      open = true;
    });
    if (path) {
      el("path", {"class": "tg-line", d: path, fill: "none", stroke: COLOR.line, "stroke-width": 1.6,
        "stroke-linejoin": "round"}, svg);
    }
    lonely.forEach(function (p) {
      el("circle", {"class": "tg-dot", cx: x(p.t), cy: y(p.v), r: 2, fill: COLOR.line}, svg);
    });
    if (!valued.length) {
      label(svg, (left + right) / 2, (top + bottom) / 2, "no data", {"text-anchor": "middle", fill: COLOR.muted});
    }
    drawMarkers(svg, options.markers, x, top, bottom, left, right);
    if (options.title) label(svg, left, 14, options.title, {"class": "tg-title", "font-size": 12, "font-weight": 600});
    hover(svg, valued, x, y, left, right, top, bottom, unit);
    return svg;
  }

  // The value under the pointer (mouse or touch): a guide, a dot and the time and value.
  function hover(svg, points, x, y, left, right, top, bottom, unit) {
    if (!points.length) return;
    var layer = el("g", {"class": "tg-hover", visibility: "hidden", "pointer-events": "none"}, svg);
    var guide = el("line", {y1: top, y2: bottom, stroke: COLOR.muted, "stroke-width": 1}, layer);
    var dot = el("circle", {r: 3.5, fill: COLOR.line, stroke: "#fff", "stroke-width": 1.5}, layer);
    var box = el("rect", {height: 18, rx: 3, fill: "#101828", "fill-opacity": 0.85}, layer);
    var text = label(layer, 0, 0, "", {fill: "#fff", "font-size": 11});
    var area = el("rect", {x: left, y: top, width: Math.max(0, right - left), height: bottom - top,
      fill: "transparent"}, svg);
    function show(event) {
      var bounds = svg.getBoundingClientRect();
      var scale = bounds.width ? Number(svg.getAttribute("width")) / bounds.width : 1;
      var px = (event.clientX - bounds.left) * scale;
      var lo = 0, hi = points.length - 1;
      while (hi - lo > 1) {
        var mid = (lo + hi) >> 1;
        if (x(points[mid].t) < px) lo = mid; else hi = mid;
      }
      var p = Math.abs(x(points[lo].t) - px) <= Math.abs(x(points[hi].t) - px) ? points[lo] : points[hi];
      var cx = x(p.t), cy = y(p.v);
      guide.setAttribute("x1", cx); guide.setAttribute("x2", cx);
      dot.setAttribute("cx", cx); dot.setAttribute("cy", cy);
      text.textContent = clock(p.t, true) + " UTC  " + formatValue(p.v, unit);
      var w = text.textContent.length * 6.2 + 10;
      var bx = cx + 8 + w > right ? cx - 8 - w : cx + 8;
      box.setAttribute("x", bx); box.setAttribute("y", top + 2); box.setAttribute("width", w);
      text.setAttribute("x", bx + 5); text.setAttribute("y", top + 15);
      layer.setAttribute("visibility", "visible");
    }
    area.addEventListener("pointermove", show);
    area.addEventListener("pointerdown", show);
    area.addEventListener("pointerleave", function () { layer.setAttribute("visibility", "hidden"); });
  }

  // --- the target lanes --------------------------------------------------------------------

  function laneChart(container, options) {
    var current = options;
    var view = responsive(container, function (width) { replace(container, drawLanes(current, width)); });
    return own(container, {
      update: function (next) { current = next; view.force(); },
      destroy: function () { view.stop(); }
    });
  }

  function drawLanes(options, width) {
    var lanes = options.lanes || [];
    var row = 40, top = options.title ? 24 : 8, left = 8, right = width - 8;
    var height = top + lanes.length * row + 26;
    var times = [];
    lanes.forEach(function (lane) {
      (lane.segments || []).forEach(function (s) { times.push(s.from, s.to); });
      (lane.events || []).forEach(function (e) { times.push(e.t); });
    });
    var from = options.from != null ? options.from : Math.min.apply(null, times.length ? times : [0]);
    var to = options.to != null ? options.to : Math.max.apply(null, times.length ? times : [1]);
    if (to <= from) to = from + 60;
    var x = function (t) { return left + (t - from) / (to - from) * (right - left); };
    var clampX = function (t) { return Math.max(left, Math.min(right, x(t))); };
    var svg = el("svg", {
      "class": "tg-lanes", width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": options.title || "targets",
      "font-family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
    });
    if (options.title) label(svg, left, 14, options.title, {"class": "tg-title", "font-size": 12, "font-weight": 600});
    lanes.forEach(function (lane, index) {
      var y = top + index * row;
      var group = el("g", {"class": "tg-lane", "data-target": lane.name}, svg);
      label(group, left, y + 11, lane.name, {"font-weight": 600});
      (lane.segments || []).forEach(function (s) {
        var sx = clampX(s.from), sw = Math.max(1, clampX(s.to) - sx);
        var rect = el("rect", {"class": "tg-segment tg-segment-" + s.kind, x: sx, y: y + 15, width: sw,
          height: 18, fill: SEGMENT[s.kind] || SEGMENT.idle}, group);
        tooltip(rect, clock(s.from, true) + "–" + clock(s.to, true) + " UTC  " + s.label);
        if (sw > s.label.length * 6 + 8) label(group, sx + 4, y + 28, s.label, {"font-size": 10});
      });
      (lane.events || []).forEach(function (e) {
        var dot = el("circle", {"class": "tg-event tg-event-" + e.kind, cx: clampX(e.t), cy: y + 33, r: 3.5,
          fill: OUTCOME[e.kind] || COLOR.muted, stroke: "#fff", "stroke-width": 1}, group);
        tooltip(dot, clock(e.t, true) + " UTC  " + e.label);
      });
    });
    var bottom = top + lanes.length * row + 4;
    drawEnded(svg, options.ended, x, top, bottom, right);
    drawTimeAxis(svg, x, from, to, left, right, bottom);
    drawMarkers(svg, options.markers, x, top, bottom, left, right, true);  // labelled on the signal charts
    return svg;
  }

  global.TidegateCharts = {lineChart: lineChart, laneChart: laneChart, formatValue: formatValue};
})(typeof window !== "undefined" ? window : this);
