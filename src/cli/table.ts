// Plain-text tables for list-* commands, fleetctl style: an upper-case legend row (unless
// --no-legend) and columns padded with spaces to their widest cell, two spaces apart.

export interface Column<R> {
  /** The name used by --fields (lower case) and, upper-cased, as the legend. */
  readonly field: string;
  /** The cell text; `full`: no truncation of ids and hashes (-l/--full). */
  readonly cell: (row: R, full: boolean) => string;
  /** The value in `-o json` (default: the full cell text). */
  readonly json?: (row: R) => unknown;
}

/** Picks columns by `--fields a,b,c`; an unknown field is an error naming the known ones. */
export function selectColumns<R>(
  all: readonly Column<R>[],
  fields: string | undefined,
  defaults: readonly string[],
): Column<R>[] | string {
  const wanted =
    fields === undefined
      ? defaults
      : fields
          .split(',')
          .map((f) => f.trim().toLowerCase())
          .filter((f) => f !== '');
  const out: Column<R>[] = [];
  for (const f of wanted) {
    const col = all.find((c) => c.field === f);
    if (col === undefined) return `unknown field "${f}"; known fields: ${all.map((c) => c.field).join(', ')}`;
    out.push(col);
  }
  if (out.length === 0)
    return `--fields needs at least one field; known fields: ${all.map((c) => c.field).join(', ')}`;
  return out;
}

export function formatTable<R>(
  columns: readonly Column<R>[],
  rows: readonly R[],
  options: { readonly legend: boolean; readonly full: boolean },
): string {
  const cells = rows.map((r) => columns.map((c) => c.cell(r, options.full)));
  const legend = options.legend;
  if (legend) cells.unshift(columns.map((c) => c.field.toUpperCase()));
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => line + '\n')
    .join('');
}

/** Rows as JSON objects with the selected fields (for `-o json`). */
export function formatJson<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const objects = rows.map((r) =>
    Object.fromEntries(columns.map((c) => [c.field, c.json === undefined ? c.cell(r, true) : c.json(r)])),
  );
  return JSON.stringify(objects, null, 2) + '\n';
}
