// Speedup heatmap as a standalone SVG string, the picture people read torchao's
// float8 speedup table as. Pure string building; no dependencies.
//
// Layout: a title, column labels on top, row labels on the left, one <rect class="cell">
// per cell labelled with the predicted speedup ("pred / actual" where a measured value
// exists), and a legend bar below. Colour diverges at 1.0 on a log2 scale clamped to
// [0.5x, 2x]: red is slower than bf16, white is break-even, green is faster.

/** One cell: the predicted speedup and, where measured, the actual one. */
export interface HeatmapCell {
  readonly predicted: number;
  readonly actual?: number;
}

/** A grid of speedups. `cells[r][c]` is null where that shape was not run. */
export interface SpeedupHeatmap {
  readonly title: string;
  /** Axis captions, e.g. "M" and "K = N". */
  readonly rowAxis: string;
  readonly colAxis: string;
  readonly rowLabels: readonly string[];
  readonly colLabels: readonly string[];
  readonly cells: readonly (readonly (HeatmapCell | null)[])[];
}

const SLOWER = [215, 48, 39] as const; // 0.5x and below
const EVEN = [247, 247, 247] as const; // 1.0x
const FASTER = [26, 152, 80] as const; // 2x and above

function mix(a: readonly number[], b: readonly number[], t: number): number[] {
  return a.map((x, i) => Math.round(x + (b[i]! - x) * t));
}

function hex(rgb: readonly number[]): string {
  return `#${rgb.map((x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/** Fill colour for a speedup: diverging at 1.0, log2 scale clamped to [0.5x, 2x]. */
export function speedupColor(speedup: number): string {
  if (!Number.isFinite(speedup) || speedup <= 0) return "#cccccc";
  const t = Math.max(-1, Math.min(1, Math.log2(speedup)));
  return hex(t < 0 ? mix(EVEN, SLOWER, -t) : mix(EVEN, FASTER, t));
}

function textColorOn(fill: string): string {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(fill.slice(i, i + 2), 16));
  const luminance = 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
  return luminance < 140 ? "#ffffff" : "#111111";
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function cellText(cell: HeatmapCell): string {
  const pred = cell.predicted.toFixed(2);
  return cell.actual === undefined ? pred : `${pred} / ${cell.actual.toFixed(2)}`;
}

/**
 * Renders the heatmap as an SVG document. Throws if `cells` does not match the labels.
 * Each cell is exactly one `<rect class="cell">`; the legend uses a gradient, not rects.
 */
export function renderSpeedupHeatmapSvg(heatmap: SpeedupHeatmap): string {
  const { rowLabels, colLabels, cells } = heatmap;
  if (cells.length !== rowLabels.length || cells.some((row) => row.length !== colLabels.length)) {
    throw new Error(
      `renderSpeedupHeatmapSvg: cells must be ${rowLabels.length} rows x ${colLabels.length} columns, ` +
        `got ${cells.length} rows of lengths [${cells.map((r) => r.length).join(", ")}]`,
    );
  }
  const hasActual = cells.some((row) => row.some((c) => c?.actual !== undefined));
  // Text widths are estimated at ~0.62 em per character (Helvetica averages less).
  const charW = 11 * 0.62;
  const cellW = Math.max(hasActual ? 96 : 64, Math.ceil(charW * Math.max(0, ...colLabels.map((l) => l.length)) + 14));
  const cellH = 32;
  const rowLabelW = Math.ceil(44 + charW * Math.max(4, ...rowLabels.map((l) => l.length)));
  const top = 84;
  const gridW = cellW * colLabels.length;
  const gridH = cellH * rowLabels.length;
  const legendY = top + gridH + 24;
  const titleW = Math.ceil(15 * 0.62 * heatmap.title.length + 40);
  const width = Math.max(rowLabelW + gridW + 20, titleW, 420);
  const margin = (width - (rowLabelW + gridW + 20)) / 2; // centres the grid under a wide title
  const left = margin + rowLabelW;
  const height = legendY + 58;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(heatmap.title)}</text>`,
    `<text x="${left + gridW / 2}" y="48" text-anchor="middle" font-size="12" fill="#444">${escapeXml(heatmap.colAxis)}</text>`,
    `<text x="${margin + 14}" y="${top + gridH / 2}" text-anchor="middle" font-size="12" fill="#444" transform="rotate(-90 ${margin + 14} ${top + gridH / 2})">${escapeXml(heatmap.rowAxis)}</text>`,
  );
  colLabels.forEach((label, c) => {
    out.push(`<text x="${left + c * cellW + cellW / 2}" y="${top - 8}" text-anchor="middle" font-size="11">${escapeXml(label)}</text>`);
  });
  rowLabels.forEach((label, r) => {
    out.push(`<text x="${left - 8}" y="${top + r * cellH + cellH / 2 + 4}" text-anchor="end" font-size="11">${escapeXml(label)}</text>`);
  });
  cells.forEach((row, r) => {
    row.forEach((cell, c) => {
      const x = left + c * cellW;
      const y = top + r * cellH;
      const fill = cell === null ? "#e0e0e0" : speedupColor(cell.predicted);
      out.push(`<rect class="cell" x="${x}" y="${y}" width="${cellW}" height="${cellH}" fill="${fill}" stroke="#ffffff" stroke-width="1"/>`);
      const label = cell === null ? "–" : cellText(cell);
      out.push(`<text x="${x + cellW / 2}" y="${y + cellH / 2 + 4}" text-anchor="middle" font-size="11" fill="${textColorOn(fill)}">${escapeXml(label)}</text>`);
    });
  });

  // Legend: a gradient bar from 0.5x to 2x with ticks at 0.5, 1, 2.
  const barW = 240;
  const barX = (width - barW) / 2;
  out.push(
    `<defs><linearGradient id="speedup-scale" x1="0" x2="1" y1="0" y2="0">`,
    `<stop offset="0" stop-color="${speedupColor(0.5)}"/><stop offset="0.5" stop-color="${speedupColor(1)}"/><stop offset="1" stop-color="${speedupColor(2)}"/>`,
    `</linearGradient></defs>`,
    `<path d="M ${barX} ${legendY} h ${barW} v 12 h ${-barW} Z" fill="url(#speedup-scale)" stroke="#999" stroke-width="0.5"/>`,
  );
  for (const [value, frac] of [[0.5, 0], [1, 0.5], [2, 1]] as const) {
    out.push(`<text x="${barX + frac * barW}" y="${legendY + 26}" text-anchor="middle" font-size="10">${value}x</text>`);
  }
  const caption = hasActual ? "fp8 speedup over bf16, predicted / actual" : "predicted fp8 speedup over bf16";
  out.push(`<text x="${width / 2}" y="${legendY + 44}" text-anchor="middle" font-size="10" fill="#444">${caption}</text>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
