// Where the CLI writes: injected so that commands run in-process in tests and print for real in main.

export interface Output {
  /** A line (or lines) of command output; a newline is added when missing. */
  out(text: string): void;
  /** A line of messages (errors, warnings, progress); a newline is added when missing. */
  err(text: string): void;
  /** Command output exactly as given (`fleetts cat` keeps the submitted bytes). */
  write(text: string): void;
  /** True when stderr is a terminal: progress is redrawn in place rather than printed as lines. */
  readonly isTTY: boolean;
  /** A transient progress line, redrawn in place on a terminal ('' clears it); ignored otherwise. */
  progress(text: string): void;
}

export const processOutput: Output = {
  out: (text) => void process.stdout.write(text.endsWith('\n') ? text : text + '\n'),
  err: (text) => void process.stderr.write(text.endsWith('\n') ? text : text + '\n'),
  write: (text) => void process.stdout.write(text),
  get isTTY() {
    return process.stderr.isTTY;
  },
  progress(text) {
    if (process.stderr.isTTY)
      process.stderr.write(`\r\x1b[2K${text.slice(0, (process.stderr.columns || 80) - 1)}`);
  },
};

/** Collects output in memory (tests). */
export class BufferOutput implements Output {
  stdout = '';
  stderr = '';
  readonly isTTY: boolean;
  constructor(options: { isTTY?: boolean } = {}) {
    this.isTTY = options.isTTY ?? false;
  }
  out(text: string): void {
    this.stdout += text.endsWith('\n') ? text : text + '\n';
  }
  err(text: string): void {
    this.stderr += text.endsWith('\n') ? text : text + '\n';
  }
  write(text: string): void {
    this.stdout += text;
  }
  /** Progress lines shown (terminal mode only). */
  readonly progressLines: string[] = [];
  progress(text: string): void {
    if (this.isTTY) this.progressLines.push(text);
  }
}
