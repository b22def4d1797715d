// Reading one local unit file for the CLI (submit/load/start and verify alike): only a regular file
// is read, and that is decided on the opened file without blocking, so a FIFO or a device named as
// a unit file is refused at once (reading a FIFO would wait forever for a writer).
import { constants } from 'node:fs';
import { lstat, open, readlink, stat } from 'node:fs/promises';
import { UsageError } from '../lib/errors.js';
import { MAX_UNIT_FILE_BYTES } from '../unit/limits.js';

export type LocalUnitFile =
  | { readonly kind: 'text'; readonly text: string }
  /** Nothing at `path` (ENOENT/ENOTDIR); `symlinkTo` when `path` is a link to nothing. */
  | { readonly kind: 'missing'; readonly path: string; readonly symlinkTo?: string }
  | { readonly kind: 'directory'; readonly path: string };

/**
 * The file at `path` (`shown` names it in messages). Throws UsageError for anything that exists but
 * is no readable unit file: a FIFO, socket or device, a file over MAX_UNIT_FILE_BYTES, no permission.
 */
export async function readUnitFile(path: string, shown: string = path): Promise<LocalUnitFile> {
  let file;
  try {
    file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const symlinkTo = await danglingLinkTarget(path);
      return { kind: 'missing', path, ...(symlinkTo === undefined ? {} : { symlinkTo }) };
    }
    if (code === 'ENXIO') throw new UsageError(`${shown}: not a regular file (a socket); give a unit file`);
    if (code === 'EACCES')
      throw new UsageError(`${shown}: permission denied; make it readable, or run as its owner`);
    throw new UsageError(`cannot read ${shown}: ${code ?? String(err)}`, { cause: err });
  }
  try {
    const info = await file.stat();
    if (info.isDirectory()) return { kind: 'directory', path };
    if (!info.isFile())
      throw new UsageError(`${shown}: not a regular file (${fileKind(info)}); give a unit file`);
    if (info.size > MAX_UNIT_FILE_BYTES) throw tooLarge(shown, info.size);
    // A file may grow after the stat (or report size 0, as /proc does): never read past the limit.
    const buf = Buffer.alloc(MAX_UNIT_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await file.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_UNIT_FILE_BYTES) throw tooLarge(shown, undefined);
    }
    return { kind: 'text', text: buf.toString('utf8', 0, length) };
  } finally {
    await file.close();
  }
}

/** The message for a directory given where a unit file belongs (`adir` and `adir/` alike). */
export function directoryMessage(arg: string): string {
  const dir = arg.replace(/\/+$/, '') || '/';
  return `${dir} is a directory, not a unit file; give the unit files in it (such as ${dir === '/' ? '' : dir}/*.unit)`;
}

/** What a missing file is in a message: `no such file`, or a link to nothing. */
export function missingMessage(file: { readonly path: string; readonly symlinkTo?: string }): string {
  return file.symlinkTo === undefined
    ? `no such file`
    : `a symbolic link to ${file.symlinkTo}, which does not exist`;
}

/** Whether `path` is an existing directory (false when missing or unreadable). */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function tooLarge(shown: string, size: number | undefined): UsageError {
  const is = size === undefined ? 'is larger than that' : `is ${size} bytes`;
  return new UsageError(`${shown}: a unit file may be at most ${MAX_UNIT_FILE_BYTES} bytes; this one ${is}`);
}

async function danglingLinkTarget(path: string): Promise<string | undefined> {
  try {
    if (!(await lstat(path)).isSymbolicLink()) return undefined;
    return await readlink(path);
  } catch {
    return undefined;
  }
}

function fileKind(info: { isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean }): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  return 'a block device';
}
