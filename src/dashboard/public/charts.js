// The dashboard's charts: executions per second, p95 latency, error rate and delivery backlog per
// addon over the last 15 minutes (Query.dashboardSeries), drawn with uPlot (served from the
// package at /dashboard/assets/uplot.iife.min.js, which defines the global uPlot) and refreshed
// every 5 s. Addon names reach the page as uPlot series labels, which it writes as text.

const QUERY = `query DashboardSeries {
  dashboardSeries {
    stepSeconds timestamps hiddenAddons
    addons { addonId addonName executionsPerSecond p95Ms errorRate deliveryBacklog }
  }
}`;
const REFRESH_MS = 5000;
const PALETTE = ['#3451b2', '#d92d20', '#079455', '#dc6803', '#7a5af8', '#0e9384', '#c11574', '#475467'];

const CHARTS = [
  { id: 'executions', title: 'Executions / s', field: 'executionsPerSecond', format: (v) => v.toFixed(2) },
  { id: 'latency', title: 'p95 latency (ms)', field: 'p95Ms', format: (v) => v.toFixed(v < 10 ? 2 : 0) },
  { id: 'errors', title: 'Error rate (%)', field: 'errorRate', scale: 100, format: (v) => v.toFixed(1) },
  {
    id: 'backlog',
    title: 'Delivery backlog',
    field: 'deliveryBacklog',
    format: (v) => String(Math.round(v)),
  },
];

/**
 * Starts the charts in `container` for one signed-in key; `call(query)` runs a GraphQL operation
 * with that key (null when the session ended). Returns stop().
 */
export function startCharts(container, call, report) {
  const uPlot = globalThis.uPlot;
  const plots = new Map();
  let signature = '';
  let active = true;

  const boxes = CHARTS.map((chart) => {
    const box = document.createElement('figure');
    box.className = 'chart';
    box.dataset.chart = chart.id;
    box.dataset.points = '0';
    const caption = document.createElement('figcaption');
    caption.textContent = chart.title;
    const plot = document.createElement('div');
    plot.className = 'plot';
    box.append(caption, plot);
    return { chart, box, plot };
  });
  const note = document.createElement('p');
  note.className = 'muted chart-note';
  container.replaceChildren(...boxes.map((b) => b.box), note);

  const width = (plot) =>
    Math.max(260, Math.floor(plot.clientWidth || plot.parentElement.clientWidth || 300));

  const render = (series) => {
    const xs = series.timestamps.map((t) => Date.parse(t) / 1000);
    const names = series.addons.map((a) => a.addonName);
    const nextSignature = names.join('\u0000');
    for (const { chart, box, plot } of boxes) {
      const scale = chart.scale ?? 1;
      const lines = series.addons.map((addon) =>
        addon[chart.field].map((v) => (v === null || v === undefined ? null : v * scale)),
      );
      const data = [xs, ...lines];
      box.dataset.addons = String(lines.length);
      box.dataset.points = String(
        lines.reduce((n, line) => n + line.filter((v) => v !== null && v > 0).length, 0),
      );
      let instance = plots.get(chart.id);
      if (instance && nextSignature !== signature) {
        instance.destroy();
        instance = undefined;
      }
      if (!instance) {
        instance = new uPlot(
          {
            width: width(plot),
            height: 180,
            legend: { live: true },
            cursor: { drag: { x: false, y: false } },
            scales: {
              x: { time: true },
              y: { range: (_u, min, max) => [0, Math.max(max ?? 0, chart.id === 'errors' ? 5 : 1)] },
            },
            axes: [
              {},
              {
                size: 50,
                values: (_u, ticks) => ticks.map((v) => chart.format(v)),
                // A backlog is a count: whole-number ticks only.
                ...(chart.id === 'backlog'
                  ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000] }
                  : {}),
              },
            ],
            series: [
              {},
              ...series.addons.map((addon, i) => ({
                label: addon.addonName,
                stroke: PALETTE[i % PALETTE.length],
                width: 2,
                spanGaps: chart.id === 'latency',
                // Latency and error rate have no value in slots without runs: dots keep a lone
                // value visible where a line would need a neighbour.
                points: { show: chart.id === 'latency' || chart.id === 'errors', size: 6 },
                value: (_u, v) => (v === null || v === undefined ? '—' : chart.format(v)),
              })),
            ],
          },
          data,
          plot,
        );
        plots.set(chart.id, instance);
      } else {
        instance.setData(data);
      }
    }
    signature = nextSignature;
    note.textContent =
      series.addons.length === 0
        ? 'No executions or deliveries in the last 15 minutes.'
        : `Last 15 minutes, one point every ${series.stepSeconds} s` +
          (series.hiddenAddons > 0 ? `; ${series.hiddenAddons} quieter addon(s) not shown.` : '.');
  };

  const refresh = () =>
    call(QUERY)
      .then((data) => {
        if (data && active) render(data.dashboardSeries);
      })
      .catch(report('Charts'));
  void refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  const onResize = () => {
    for (const { chart, plot } of boxes) plots.get(chart.id)?.setSize({ width: width(plot), height: 180 });
  };
  globalThis.addEventListener('resize', onResize);

  return {
    stop() {
      active = false;
      clearInterval(timer);
      globalThis.removeEventListener('resize', onResize);
      for (const instance of plots.values()) instance.destroy();
      plots.clear();
      container.replaceChildren();
    },
  };
}
