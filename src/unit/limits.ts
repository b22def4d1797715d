// Size limits on unit files, enforced by parseUnitFile (parse-unit-file.ts) so that every unit that
// enters the registry is small enough to store, watch and run. Each limit names why it exists; the
// error that reports a breach names the limit, the actual size and how to fix it.

/**
 * Largest unit file, in UTF-8 bytes. A unit file is stored whole as one etcd value
 * (`unit-files/<hash>`) and submitted in one transaction; etcd refuses requests over 1.5 MiB by
 * default, and big values slow every watcher and snapshot. 256 KiB is far above any real unit.
 */
export const MAX_UNIT_FILE_BYTES = 256 * 1024;

/**
 * Longest line, in UTF-8 bytes, both a physical line and a logical line (continuations joined).
 * A value ends up as one argv string or environment variable, which Linux caps at 128 KiB
 * (MAX_ARG_STRLEN); 64 KiB keeps every value well below that, after specifier expansion too.
 */
export const MAX_LINE_BYTES = 64 * 1024;

/**
 * Most `Key=Value` assignments in one file (all sections together). Real units have dozens; the
 * bound keeps the work of validating, scheduling and starting one unit small and predictable.
 */
export const MAX_ASSIGNMENTS = 4096;
