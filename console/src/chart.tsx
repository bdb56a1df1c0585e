/**
 * A uPlot chart as a Preact component. The chart is created once per mount and fed new data with
 * setData; it follows its container's width (ResizeObserver), so it fits a phone and a desktop.
 * `summary` is the text alternative screen readers get (the canvas itself says nothing).
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface ChartSeries {
  readonly label: string;
  readonly color: string;
}

export interface ChartProps {
  readonly summary: string;
  readonly series: readonly ChartSeries[];
  /** [x values, ...one array per series] */
  readonly data: uPlot.AlignedData;
  /** Bars instead of lines; series share an x, so list the tallest first (p95 before p50). */
  readonly bars?: boolean;
  /** Names for integer x values (a category axis) instead of times. */
  readonly categories?: readonly string[];
  readonly height?: number;
  readonly yLabel?: string;
  /** For a time axis: show at least this many seconds, ending at the newest point (one sample is not a chart). */
  readonly minSpanSeconds?: number;
}

export function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const { series, bars, categories, height = 200, yLabel, minSpanSeconds = 0 } = props;
  const shape = `${series.map((s) => s.label).join('|')}|${bars ? 'b' : 'l'}|${categories?.join(',') ?? ''}`;
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      scales: {
        x: categories
          ? { time: false, range: [-0.5, categories.length - 0.5] as uPlot.Range.MinMax }
          : {
              time: true,
              // From the data, not from min/max: uPlot widens a single point's range to a day first.
              range: (u, min, max): uPlot.Range.MinMax => {
                const xs = u.data[0];
                const lo = xs[0];
                const hi = xs[xs.length - 1];
                if (!minSpanSeconds || lo === undefined || hi === undefined) return [min, max];
                return hi - lo < minSpanSeconds ? [hi - minSpanSeconds, hi] : [lo, hi];
              },
            },
      },
      axes: [categories ? { values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? (categories[t] ?? '') : '')), splits: () => categories.map((_, i) => i) } : {}, { label: yLabel ?? '', size: 60 }],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          fill: bars ? `${s.color}99` : `${s.color}22`,
          width: 2,
          ...(bars ? { paths: uPlot.paths.bars!({ size: [0.6, 60] }) } : {}),
        })),
      ],
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
    };
    const u = new uPlot(opts, props.data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Re-created only when the chart's shape changes; data goes through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, height, minSpanSeconds]);
  useEffect(() => {
    plot.current?.setData(props.data);
  }, [props.data]);
  return (
    <figure class="chart">
      <div ref={box} role="img" aria-label={props.summary} />
      <figcaption class="visually-hidden">{props.summary}</figcaption>
    </figure>
  );
}
