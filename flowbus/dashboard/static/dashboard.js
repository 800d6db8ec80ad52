// The dashboard's own script: draws step graphs (mermaid) and charts (uPlot) in whatever
// htmx brings in, and marks live connections. Every library comes from /ui/static/vendor.
"use strict";

(function () {
  const drawn = new Map(); // mermaid source -> SVG, so a redraw of the same graph is instant
  let sequence = 0;

  async function drawGraphs(root) {
    if (!window.mermaid) return;
    const pending = root.querySelectorAll("pre.mermaid:not([data-drawn])");
    for (const pre of pending) {
      const source = pre.textContent;
      pre.setAttribute("data-drawn", "pending");
      let svg = drawn.get(source);
      if (!svg) {
        try {
          sequence += 1;
          svg = (await window.mermaid.render("graph-" + sequence, source)).svg;
          drawn.set(source, svg);
        } catch (error) {
          pre.setAttribute("data-drawn", "failed");
          pre.removeAttribute("aria-hidden");
          continue;
        }
      }
      const figure = document.createElement("div");
      figure.className = "graph-svg";
      figure.setAttribute("role", "img");
      figure.setAttribute("aria-label", "Step graph");
      figure.innerHTML = svg;
      pre.replaceWith(figure);
      figure.closest("figure")?.setAttribute("data-drawn", "true");
    }
  }

  function drawCharts(root) {
    if (!window.uPlot) return;
    for (const holder of root.querySelectorAll("[data-chart]:not([data-drawn])")) {
      const all = JSON.parse(document.getElementById(holder.dataset.chart).textContent);
      const spec = all[holder.dataset.series];
      const width = Math.max(260, Math.min(holder.clientWidth || 600, 1200));
      const options = {
        width: width,
        height: 260,
        scales: { x: { time: true } },
        axes: [{}, { label: spec.unit }],
        series: [{}].concat(
          spec.series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: false }))
        ),
      };
      const data = [spec.x].concat(spec.series.map((s) => s.values));
      holder.innerHTML = "";
      new window.uPlot(options, data, holder);
      holder.setAttribute("data-drawn", "true");
    }
  }

  function draw(root) {
    drawGraphs(root);
    drawCharts(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.mermaid) {
      window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
    }
    draw(document);
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    draw(event.detail.elt.parentNode || document);
  });
  document.addEventListener("htmx:sseOpen", function (event) {
    event.target.setAttribute("data-sse", "open");
  });
  document.addEventListener("htmx:sseClose", function (event) {
    event.target.setAttribute("data-sse", "closed");
  });
})();
