// dmstore explorer: draws the page's charts from its embedded JSON (#page-data) with the
// vendored Chart.js, and polls /api/version to offer a reload when the store has moved on.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const served = Number(document.body.dataset.version);
  Chart.defaults.animation = false;   // draw at once: screenshots and slow machines see the final chart
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

  function lineOf(points) {   // y = x over the points' range
    const v = points.flatMap(p => [p.x, p.y]);
    const lo = Math.min(...v), hi = Math.max(...v);
    return [{x: lo, y: lo}, {x: hi, y: hi}];
  }

  function homeCharts() {
    const lds = document.getElementById("lds-chart");
    if (!lds || !data.fits) return;
    const fits = data.fits.filter(f => f.lds !== null);
    new Chart(lds, {type: "bar", data: {labels: fits.map(f => f.fit_id + " " + f.estimator),
      datasets: [{label: "held-out LDS", data: fits.map(f => f.lds),
                  backgroundColor: fits.map((f, i) => palette[i % palette.length])}]},
      options: {maintainAspectRatio: false, plugins: {legend: {display: false},
        title: {display: true, text: "LDS per fit (held-out eval models)"}},
        onClick: (e, els) => { if (els.length) location.href = "/targets?fit=" + fits[els[0].index].fit_id; }}});
    const cost = document.getElementById("cost-chart");
    // one line per estimator and experiment/alpha: its fits on nested shares of the models
    // (`dmstore frontier`) form its cost-quality curve; a method with one fit is one point
    const groups = {};
    fits.filter(f => f.models_used).forEach(f => {
      const key = f.estimator + " (" + f.experiment + ", α " + f.alpha + ")";
      (groups[key] = groups[key] || []).push(f);
    });
    const datasets = Object.keys(groups).sort().map((key, i) => ({
      label: key, showLine: groups[key].length > 1,
      data: groups[key].sort((a, b) => a.models_used - b.models_used).map(f => ({x: f.models_used, y: f.lds})),
      borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], pointRadius: 5}));
    new Chart(cost, {type: "scatter", data: {datasets: datasets},
      options: {maintainAspectRatio: false, plugins: {title: {display: true, text: "Cost–quality: LDS against models used"}},
        scales: {x: {type: "logarithmic", title: {display: true, text: "models used (log)"}},
                 y: {title: {display: true, text: "LDS"}}}}});
  }

  function targetCharts() {
    if (!data.fits) return;
    document.querySelectorAll("canvas.scatter").forEach(function (c) {
      const f = data.fits.find(x => String(x.fit_id) === c.dataset.fit);
      if (!f || !f.scatter.length) { c.remove(); return; }
      const pts = f.scatter.map(r => ({x: r.predicted, y: r.margin}));
      new Chart(c, {type: "scatter", data: {datasets: [
          {label: "eval models", data: pts, pointRadius: 2, backgroundColor: "rgba(31,119,180,0.5)"},
          {label: "y = x", type: "line", data: lineOf(pts), borderColor: "#999", borderDash: [4, 4], pointRadius: 0}]},
        options: {plugins: {legend: {display: false}},
          scales: {x: {title: {display: true, text: "predicted margin"}},
                   y: {title: {display: true, text: "actual margin"}}}}});
    });
  }

  function poll() {
    fetch("/api/version").then(r => r.json()).then(v => {
      if (v.latest > served) {
        document.getElementById("newer-v").textContent = "version " + v.latest + ", showing " + served;
        document.getElementById("newer").hidden = false;
      }
    }).catch(() => {});
  }

  homeCharts();
  targetCharts();
  setInterval(poll, 5000);
  poll();
}());
