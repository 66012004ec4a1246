/* Draws the report's charts from the JSON the page carries (script#tidegate-report-data). */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("tidegate-report-data").textContent);
  var boxes = document.querySelectorAll("[data-chart]");
  for (var i = 0; i < boxes.length; i++) {
    TidegateCharts.lineChart(boxes[i], data.charts[Number(boxes[i].getAttribute("data-chart"))]);
  }
  var lanes = document.querySelector("[data-lanes]");
  if (lanes && data.lanes) TidegateCharts.laneChart(lanes, data.lanes);
})();
