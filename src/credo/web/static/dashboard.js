// Draws the dashboard's charts with the vendored Chart.js from the JSON the page embeds.
(function () {
  "use strict";
  var source = document.getElementById("charts-data");
  if (!source || !window.Chart) { return; }
  var charts = JSON.parse(source.textContent);
  // Colour-blind-safe palette (Okabe-Ito), dark enough against white.
  var palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
  window.credoCharts = {};
  charts.forEach(function (c) {
    var canvas = document.getElementById("chart-" + c.id);
    if (!canvas) { return; }
    var datasets = c.datasets.map(function (d, i) {
      var colour = palette[i % palette.length];
      return {
        label: d.label,
        data: d.data,
        backgroundColor: c.type === "line" ? colour : colour + "CC",
        borderColor: colour,
        borderWidth: 2,
        tension: 0.2
      };
    });
    window.credoCharts[c.id] = new window.Chart(canvas, {
      type: c.type,
      data: { labels: c.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: datasets.length > 1, position: "bottom" } },
        scales: {
          x: { stacked: !!c.stacked },
          y: {
            stacked: !!c.stacked,
            beginAtZero: true,
            ticks: c.percent ? { callback: function (v) { return v + "%"; } } : {}
          }
        }
      }
    });
  });
  document.documentElement.dataset.chartsReady = String(Object.keys(window.credoCharts).length);
})();
